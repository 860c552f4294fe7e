"""The core layer: the generated codes and table layouts (codes), the guarded load of the
extension (ext), and seeds, streams and generator handles (seeds). Imports nothing else of
paramops."""
