"""Generate the numeric constants of paramops stream v1, and every code and table layout.

Writes
  csrc/paramops/constants.h   the stream's constants (the single source of truth, read by the
                              C++/CUDA kernels), and paramops/spec/constants.py, the same numbers for
                              the Python reference and the Triton kernels. Every constant is
                              rounded once, to nearest even, from an exact or 256-bit value, and
                              written as a hex float so no compiler or parser rounds it again;
  csrc/paramops/codes.h       the codes (kinds, dtypes) and the layouts of multi_init_'s plan and
                              of the Python writers' multi table, and paramops/core/codes.py, the same
                              for Python and the Triton kernels (from CODES below).

tests/core/test_generated.py checks that the files are what this script writes, and that
they agree.

Run: python csrc/paramops/gen_constants.py   (needs mpmath, which torch installs)
"""
import os
import mpmath as mp

mp.mp.prec = 256
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def rnd(x, bits):
    with mp.workprec(bits):
        y = +mp.mpf(x)
    return float(y)


def f32(x):
    return rnd(x, 24)


def f64(x):
    return rnd(x, 53)


pi = mp.pi
tables = {}  # name -> (ctype, [floats])

# log(m) = 2s + 2s * z * P(z),  s = f/(2+f), z = s^2,  P(z) = sum z^k/(2k+3)
tables["LOG_P_F32"] = ("float", [f32(mp.mpf(1) / (2 * k + 3)) for k in range(4)])
tables["LOG_P_F64"] = ("double", [f64(mp.mpf(1) / (2 * k + 3)) for k in range(10)])

# sin(pi/2 t) = t * S(t^2), cos(pi/2 t) = C(t^2), |t| <= 1/2 (Taylor series)
def sin_c(k):
    return (-1) ** k * (pi / 2) ** (2 * k + 1) / mp.factorial(2 * k + 1)


def cos_c(k):
    return (-1) ** k * (pi / 2) ** (2 * k) / mp.factorial(2 * k)


tables["SIN_F32"] = ("float", [f32(sin_c(k)) for k in range(5)])
tables["COS_F32"] = ("float", [f32(cos_c(k)) for k in range(6)])
tables["SIN_F64"] = ("double", [f64(sin_c(k)) for k in range(9)])
tables["COS_F64"] = ("double", [f64(cos_c(k)) for k in range(10)])

# Wichura (1988) AS241 PPND16, coefficients lowest degree first.
AS241 = {
    "A": "3.3871328727963666080e0 1.3314166789178437745e+2 1.9715909503065514427e+3 1.3731693765509461125e+4 4.5921953931549871457e+4 6.7265770927008700853e+4 3.3430575583588128105e+4 2.5090809287301226727e+3",
    "B": "1.0 4.2313330701600911252e+1 6.8718700749205790830e+2 5.3941960214247511077e+3 2.1213794301586595867e+4 3.9307895800092710610e+4 2.8729085735721942674e+4 5.2264952788528545610e+3",
    "C": "1.42343711074968357734e0 4.63033784615654529590e0 5.76949722146069140550e0 3.64784832476320460504e0 1.27045825245236838258e0 2.41780725177450611770e-1 2.27238449892691845833e-2 7.74545014278341407640e-4",
    "D": "1.0 2.05319162663775882187e0 1.67638483018380384940e0 6.89767334985100004550e-1 1.48103976427480074590e-1 1.51986665636164571966e-2 5.47593808499534494600e-4 1.05075007164441684324e-9",
    "E": "6.65790464350110377720e0 5.46378491116411436990e0 1.78482653991729133580e0 2.96560571828504891230e-1 2.65321895265761230930e-2 1.24266094738807843860e-3 2.71155556874348757815e-5 2.01033439929228813265e-7",
    "F": "1.0 5.99832206555887937690e-1 1.36929880922735805310e-1 1.48753612908506148525e-2 7.86869131145613259100e-4 1.84631831751005468180e-5 1.42151175831644588870e-7 2.04426310338993978564e-15",
}
for k, v in AS241.items():
    vals = [mp.mpf(s) for s in v.split()]
    tables[f"PPND_{k}_F32"] = ("float", [f32(x) for x in vals])
    tables[f"PPND_{k}_F64"] = ("double", [f64(x) for x in vals])

# Cody (1969) rational approximations of the normal CDF (as in R's pnorm), double only.
CODY = {
    "A": "2.2352520354606839287 161.02823106855587881 1067.6894854603709582 18154.981253343561249 0.065682337918207449113",
    "B": "47.20258190468824187 976.09855173777669322 10260.932208618978205 45507.789335026729956",
    "C": "0.39894151208813466764 8.8831497943883759412 93.506656132177855979 597.27027639480026226 2494.5375852903726711 6848.1904505362823326 11602.651437647350124 9842.7148383839780218 1.0765576773720192317e-8",
    "D": "22.266688044328115691 235.38790178262499861 1519.377599407554805 6485.558298266760755 18615.571640885098091 34900.952721145977266 38912.003286093271411 19685.429676859990727",
    "P": "0.21589853405795699 0.1274011611602473639 0.022235277870649807 0.001421619193227893466 2.9112874951168792e-5 0.02307344176494017303",
    "Q": "1.28426009614491121 0.468238212480865118 0.0659881378689285515 0.00378239633202758244 7.29751555083966205e-5",
}
cody = {k: [mp.mpf(x) for x in v.split()] for k, v in CODY.items()}
a, b, c, d, pp, q = (cody[k] for k in "ABCDPQ")
one = mp.mpf(1)
# Cody's nested loops written as plain polynomials, lowest degree first:
# |x| <= 0.674: Phi = 1/2 + x N1(x^2)/D1(x^2); 0.674 < y <= sqrt(32): tail = e(y) N2(y)/D2(y);
# y > sqrt(32): tail = e(y) (1/sqrt(2 pi) - s N3(s)/D3(s)) / y with s = 1/y^2.
for name, vals in {
    "CODY_N1": [a[3], a[2], a[1], a[0], a[4]],
    "CODY_D1": [b[3], b[2], b[1], b[0], one],
    "CODY_N2": [c[7], c[6], c[5], c[4], c[3], c[2], c[1], c[0], c[8]],
    "CODY_D2": [d[7], d[6], d[5], d[4], d[3], d[2], d[1], d[0], one],
    "CODY_N3": [pp[4], pp[3], pp[2], pp[1], pp[0], pp[5]],
    "CODY_D3": [q[4], q[3], q[2], q[1], q[0], one],
}.items():
    tables[name] = ("double", [f64(x) for x in vals])

# exp(r) = sum r^k/k!, |r| <= ln2/2
tables["EXP_P"] = ("double", [f64(1 / mp.factorial(k)) for k in range(14)])

ln2 = mp.log(2)
ln2_hi32 = rnd(ln2, 16)        # few bits: e * LN2_HI is exact for |e| < 2^8
ln2_hi64 = rnd(ln2, 32)        # exact for |e| < 2^21
scalars = {
    "LN2_HI_F32": ("float", f32(ln2_hi32)),
    "LN2_LO_F32": ("float", f32(ln2 - ln2_hi32)),
    "LN2_HI_F64": ("double", f64(ln2_hi64)),
    "LN2_LO_F64": ("double", f64(ln2 - ln2_hi64)),
    "INV_LN2_F64": ("double", f64(1 / ln2)),
    "SQRT_32": ("double", f64(mp.sqrt(32))),
    "INV_SQRT_2PI": ("double", f64(1 / mp.sqrt(2 * pi))),
    "PPND_SPLIT1_F32": ("float", f32(mp.mpf("0.425"))),
    "PPND_SPLIT1_F64": ("double", f64(mp.mpf("0.425"))),
    "PPND_CONST1_F32": ("float", f32(mp.mpf("0.180625"))),
    "PPND_CONST1_F64": ("double", f64(mp.mpf("0.180625"))),
    "PPND_CONST2_F32": ("float", f32(mp.mpf("1.6"))),
    "PPND_CONST2_F64": ("double", f64(mp.mpf("1.6"))),
    "CODY_SPLIT1": ("double", f64(mp.mpf("0.67448975"))),
}


def lit(x, ctype):
    h = x.hex()
    return h + ("f" if ctype == "float" else "")


# ---------------------------------------------------------------- codes and layouts
# Each entry: (C++ prefix, Python prefix, names in order of their codes 0, 1, ..., comment).
CODES = [
    ("KIND_", "", ["UNIFORM", "NORMAL", "TRUNC", "FILL"],
     "what an entry writes: multi_init_'s plan column KIND, a Job's kind, the Capture's records"),
    ("DT_", "", ["F32", "F64", "F16", "BF16"],
     "output dtypes (float16 and bfloat16 compute in binary32, float64 in binary64)"),
    ("PLAN_", "PLAN_", ["KIND", "SEED", "STREAM", "OFFSET"],
     "columns of multi_init_'s plan, int64 [n, PLAN_W]; its params are float64 [n, PARAMS_W]"),
    ("TC_", "TABLE_", ["INDEX", "ADDR", "NUMEL", "OFFSET", "SEED", "STREAM", "KIND", "DTYPE", "STRIDE",
                       "P0", "P1", "P2", "P3", "P4", "P5"],
     "columns of the multi table a Python writer gets (int64 [rows, TABLE_W], one row per non-empty entry)"),
]
# The number of parameters of each kind (the rest of a params row is zero), and its name.
ARITY = {"UNIFORM": 2, "NORMAL": 2, "TRUNC": 4, "FILL": 1}
KIND_NAMES = {"UNIFORM": "uniform", "NORMAL": "normal", "TRUNC": "trunc_normal", "FILL": "fill"}
SIZES = {"PLAN_W": 4, "PARAMS_W": 4, "TABLE_W": 15}
# The table's STRIDE of an entry whose memory is not one strided run (0 is never such a stride).
NOT_ONE_RUN = 0


def render_codes():
    """(codes.h, codes.py) as text."""
    h = ["// Generated by csrc/paramops/gen_constants.py -- do not edit.",
         "// The codes and table layouts every backend shares (C++, CUDA, Python, Triton).",
         "#pragma once", "#include <stdint.h>", "namespace paramops {"]
    py = ['"""Generated by csrc/paramops/gen_constants.py -- do not edit.', "",
          "The codes and table layouts of csrc/paramops/codes.h, for Python and the Triton kernels.",
          '"""']
    for cpre, ppre, names, doc in CODES:
        h.append(f"// {doc}")
        h.append("enum : int { " + ", ".join(f"{cpre}{n} = {i}" for i, n in enumerate(names)) + " };")
        py.append(f"# {doc}")
        py += [f"{ppre}{n} = {i}" for i, n in enumerate(names)]
    h.append("constexpr int kNumKinds = %d;" % len(CODES[0][2]))
    h.append("constexpr int kArity[kNumKinds] = {" + ", ".join(str(ARITY[n]) for n in CODES[0][2]) + "};")
    h.append("constexpr const char* kKindName[kNumKinds] = {"
             + ", ".join(f'"{KIND_NAMES[n]}"' for n in CODES[0][2]) + "};")
    for name, v in SIZES.items():
        h.append(f"constexpr int k{''.join(w.title() for w in name.split('_'))} = {v};")
    h.append(f"constexpr int64_t kNotOneRun = {NOT_ONE_RUN};")
    h += ["}  // namespace paramops", ""]
    py.append("NUM_KINDS = %d" % len(CODES[0][2]))
    py.append("ARITY = (" + ", ".join(str(ARITY[n]) for n in CODES[0][2]) + ",)")
    py.append("KIND_NAME = (" + ", ".join(repr(KIND_NAMES[n]) for n in CODES[0][2]) + ",)")
    py += [f"{name} = {v}" for name, v in SIZES.items()]
    py.append(f"NOT_ONE_RUN = {NOT_ONE_RUN}")
    return "\n".join(h), "\n".join(py) + "\n"


def render_constants():
    """(constants.h, constants.py) as text."""
    h = [
        "// Generated by csrc/paramops/gen_constants.py -- do not edit.",
        "// paramops stream v1 constants: each is the nearest float/double to the exact value.",
        "#pragma once",
        '#include "paramops/common.h"',
        "namespace paramops {",
        "namespace k {",
    ]
    py = [
        '"""Generated by csrc/paramops/gen_constants.py -- do not edit.',
        "",
        "The same numbers as csrc/paramops/constants.h, as exact Python floats.",
        '"""',
    ]
    for name, (ctype, x) in scalars.items():
        h.append(f"constexpr {ctype} {name} = {lit(x, ctype)};")
        py.append(f"{name} = float.fromhex({x.hex()!r})")
    for name, (ctype, vals) in tables.items():
        # Horner by explicit fma, highest degree first: sum_k c[k] x^k.
        fma = "fmaf" if ctype == "float" else "fma"
        h.append(f"PARAMOPS_HD {ctype} {name}({ctype} x) {{")
        h.append(f"  {ctype} p = {lit(vals[-1], ctype)};")
        for c in reversed(vals[:-1]):
            h.append(f"  p = {fma}(p, x, {lit(c, ctype)});")
        h.append("  return p;")
        h.append("}")
        py.append(f"{name} = (" + ", ".join(f"float.fromhex({x.hex()!r})" for x in vals) + ",)")
    h += ["}  // namespace k", "}  // namespace paramops", ""]
    return "\n".join(h), "\n".join(py) + "\n"


# (generated file, its text): what main() writes
def outputs():
    hc, pyc = render_codes()
    hk, pyk = render_constants()
    return {os.path.join(HERE, "codes.h"): hc, os.path.join(ROOT, "paramops", "core", "codes.py"): pyc,
            os.path.join(HERE, "constants.h"): hk, os.path.join(ROOT, "paramops", "spec", "constants.py"): pyk}


def main():
    for path, text in outputs().items():
        with open(path, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
