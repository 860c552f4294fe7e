// paramops kernels: the fused mode's engine (paramops/capture.py's Capture, with
// the extension). While a Capture is active on a thread:
//
//   - the paramops single ops record their checked call instead of writing it
//     (single.h calls record()), and so do torch's Tensor.normal_, uniform_,
//     fill_ and zero_ on tensors paramops can write (their seeds drawn as they
//     are recorded, in call order);
//   - any other op that touches the memory of a pending record first writes the
//     pending records on that memory (views and ops that read only metadata do
//     not); Python wraps the readers that never reach the dispatcher
//     (Tensor.numpy, tolist, ...) and calls flush_touching();
//   - a record that overlaps pending records on the same memory waits for a later
//     wave, except that one on exactly the view of the latest pending record
//     replaces it (its values would be overwritten anyway);
//   - flush() writes wave after wave, each as one multi_init_ per device.
//
// The interception is a boxed fallback on the DeferredInit dispatch key (the key
// torch keeps for deferred module initialization), which enter() adds to the
// thread's included keys: about a microsecond per op, where a Python
// TorchDispatchMode costs ten. Without the extension, paramops/capture.py does the
// same in Python.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <tuple>
#include <vector>

namespace paramops {
namespace capture {

// Records a checked init of t (numel > 0, version counter bumped) in the innermost
// active Capture of this thread: kind KIND_*, p the kind's parameters (zero-padded),
// and the call's seed, stream and offset. False, and nothing done, when no Capture
// records now (none active, or it is busy with its own work).
bool record(const at::Tensor& t, int kind, const double (&p)[4], int64_t seed, int64_t stream, int64_t offset);

// ---- the Python side (module.cpp; paramops/capture.py)
// resolve: a Python callable or nullptr (new reference taken), see Engine::flush;
// watch: storage keys whose writes are noted (has_watch false: none noted).
int64_t enter(void* resolve, std::vector<uintptr_t> watch, bool has_watch, bool eager);
// Pops the Capture (the innermost), writes its pending records, and forgets it.
// Returns (records taken, launches made, the watched keys that were written).
std::tuple<int64_t, int64_t, std::vector<uintptr_t>> exit(int64_t id);
void flush(int64_t id);
std::tuple<int64_t, int64_t, int64_t> info(int64_t id);  // (recorded, flushes, pending)
// Writes the records pending on t's memory in every active Capture (outermost first).
void flush_touching(const at::Tensor& t);
// The identity of t's memory: its storage's address (0: none).
uintptr_t storage_key(const at::Tensor& t);
// (active Captures on this thread, whether the DeferredInit key is included): for the tests.
std::pair<int64_t, bool> state();

}  // namespace capture
}  // namespace paramops
