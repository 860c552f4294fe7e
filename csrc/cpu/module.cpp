// paramops._C, the Python module (`from paramops import _C` loads this library).
// Its functions:
//   register(device, writer): serve "cpu" or "cuda" tensors with every op's C++
//     kernel (checks, seed, version bump, capture) and `writer`: None for the
//     native one (the CPU generators, or the CUDA kernels of a CUDA build), else a
//     Python object with random() and multi() (cpu/py_writer.cpp);
//   cpu_isa(): the code path the CPU kernels take now ("avx512", "avx2", "base");
//   cuda_built(): whether this build has the CUDA kernels;
//   generator_handle(g): the handle of torch.Generator g (seeds.h);
//   draw_seed(handle or None): one seed, as the ops draw it;
//   capture_enter / capture_exit / capture_flush / capture_info /
//   capture_flush_touching / capture_state / storage_key: the fused mode's engine
//   (capture.h).
#include <Python.h>

#include <ATen/ATen.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/Generator.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstring>
#include <string>
#include <vector>

#include "cpu/capture.h"
#include "cpu/driver.h"
#include "cpu/seeds.h"
#include "cpu/writer.h"

namespace {

using namespace paramops;

const at::Tensor& tensor_arg(PyObject* o, const char* fn) {
  TORCH_CHECK_TYPE(THPVariable_Check(o), "paramops._C.", fn, ": expected a torch.Tensor, got ", Py_TYPE(o)->tp_name);
  return THPVariable_Unpack(o);
}

int64_t int_arg(PyObject* o, const char* fn) {
  const long long v = PyLong_AsLongLong(o);
  if (v == -1 && PyErr_Occurred()) throw python_error();
  (void)fn;
  return v;
}

PyObject* py_register(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  const char* device = nullptr;
  PyObject* writer = nullptr;
  if (!PyArg_ParseTuple(args, "sO", &device, &writer)) return nullptr;
  int slot;
  if (std::strcmp(device, "cpu") == 0) {
    slot = cpu::SLOT_CPU;
  } else if (std::strcmp(device, "cuda") == 0) {
    slot = cpu::SLOT_CUDA;
  } else {
    TORCH_CHECK_VALUE(false, "paramops._C.register: device must be 'cpu' or 'cuda', got '", device, "'");
  }
  cpu::Writer* w = nullptr;
  if (writer != Py_None) {
    w = cpu::python_writer(writer);
  } else {
    w = slot == cpu::SLOT_CPU ? cpu::cpu_writer() : cpu::cuda_writer();
    TORCH_CHECK_VALUE(w != nullptr,
                      "paramops: this build of paramops._C has no CUDA kernels (built without CUDA: no "
                      "csrc/cuda/*.cu, a CPU-only torch, no CUDA toolchain or PARAMOPS_NO_CUDA=1)");
  }
  cpu::register_slot(slot, w);
  Py_RETURN_NONE;
  END_HANDLE_TH_ERRORS
}

PyObject* py_cpu_isa(PyObject*, PyObject*) {
  HANDLE_TH_ERRORS
  return PyUnicode_FromString(cpu::choose_isa().name);
  END_HANDLE_TH_ERRORS
}

PyObject* py_cuda_built(PyObject*, PyObject*) {
  if (cpu::cuda_writer() != nullptr) Py_RETURN_TRUE;
  Py_RETURN_FALSE;
}

PyObject* py_generator_handle(PyObject*, PyObject* g) {
  HANDLE_TH_ERRORS
  TORCH_CHECK_TYPE(THPGenerator_Check(g), "generator must be a torch.Generator or None, got ", Py_TYPE(g)->tp_name);
  return PyLong_FromLongLong(cpu::generator_handle(reinterpret_cast<THPGenerator*>(g)->cdata));
  END_HANDLE_TH_ERRORS
}

PyObject* py_draw_seed(PyObject*, PyObject* h) {
  HANDLE_TH_ERRORS
  std::optional<int64_t> handle;
  if (h != Py_None) handle = int_arg(h, "draw_seed");
  return PyLong_FromLongLong(cpu::draw_seed(cpu::generator_of(handle, cpu::Subject{"draw_seed"})));
  END_HANDLE_TH_ERRORS
}

PyObject* py_capture_enter(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  PyObject *resolve = nullptr, *watch = nullptr;
  int eager = 0;
  if (!PyArg_ParseTuple(args, "OOp", &resolve, &watch, &eager)) return nullptr;
  std::vector<uintptr_t> keys;
  const bool has_watch = watch != Py_None;
  if (has_watch) {
    PyObject* seq = PySequence_Fast(watch, "paramops._C.capture_enter: watch must be a sequence of ints");
    if (seq == nullptr) return nullptr;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; ++i) {
      const unsigned long long k = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
      if (PyErr_Occurred()) {
        Py_DECREF(seq);
        return nullptr;
      }
      keys.push_back(static_cast<uintptr_t>(k));
    }
    Py_DECREF(seq);
  }
  return PyLong_FromLongLong(capture::enter(resolve == Py_None ? nullptr : resolve, std::move(keys), has_watch,
                                            eager != 0));
  END_HANDLE_TH_ERRORS
}

PyObject* py_capture_exit(PyObject*, PyObject* id) {
  HANDLE_TH_ERRORS
  const auto [recorded, flushes, written] = capture::exit(int_arg(id, "capture_exit"));
  PyObject* w = PyList_New(static_cast<Py_ssize_t>(written.size()));
  if (w == nullptr) return nullptr;
  for (size_t i = 0; i < written.size(); ++i) {
    PyList_SET_ITEM(w, static_cast<Py_ssize_t>(i), PyLong_FromUnsignedLongLong(written[i]));
  }
  return Py_BuildValue("LLN", static_cast<long long>(recorded), static_cast<long long>(flushes), w);
  END_HANDLE_TH_ERRORS
}

// f(), returning None to Python (its exceptions as Python's).
template <class F>
PyObject* returning_none(F&& f) {
  HANDLE_TH_ERRORS
  f();
  Py_RETURN_NONE;
  END_HANDLE_TH_ERRORS
}

PyObject* py_capture_flush(PyObject*, PyObject* id) {
  return returning_none([&] { capture::flush(int_arg(id, "capture_flush")); });
}

PyObject* py_capture_info(PyObject*, PyObject* id) {
  HANDLE_TH_ERRORS
  const auto [recorded, flushes, pending] = capture::info(int_arg(id, "capture_info"));
  return Py_BuildValue("LLL", static_cast<long long>(recorded), static_cast<long long>(flushes),
                       static_cast<long long>(pending));
  END_HANDLE_TH_ERRORS
}

PyObject* py_capture_flush_touching(PyObject*, PyObject* t) {
  return returning_none([&] { capture::flush_touching(tensor_arg(t, "capture_flush_touching")); });
}

PyObject* py_capture_state(PyObject*, PyObject*) {
  const auto [depth, included] = capture::state();
  return Py_BuildValue("LO", static_cast<long long>(depth), included ? Py_True : Py_False);
}

PyObject* py_storage_key(PyObject*, PyObject* t) {
  HANDLE_TH_ERRORS
  return PyLong_FromUnsignedLongLong(capture::storage_key(tensor_arg(t, "storage_key")));
  END_HANDLE_TH_ERRORS
}

PyMethodDef methods[] = {
    {"register", py_register, METH_VARARGS,
     "register(device, writer): serve 'cpu' or 'cuda' tensors with the ops' C++ kernels and `writer` "
     "(None: the native one; else an object with random() and multi())."},
    {"cpu_isa", py_cpu_isa, METH_NOARGS, "The CPU code path the kernels take now: 'avx512', 'avx2' or 'base'."},
    {"cuda_built", py_cuda_built, METH_NOARGS, "Whether this build of paramops._C has the CUDA kernels."},
    {"generator_handle", py_generator_handle, METH_O, "The ops' handle of a torch.Generator."},
    {"draw_seed", py_draw_seed, METH_O, "One seed from the generator of a handle (None: torch's default)."},
    {"capture_enter", py_capture_enter, METH_VARARGS, "capture_enter(resolve, watch, eager) -> id"},
    {"capture_exit", py_capture_exit, METH_O, "capture_exit(id) -> (recorded, flushes, written keys)"},
    {"capture_flush", py_capture_flush, METH_O, "capture_flush(id): write the Capture's pending records"},
    {"capture_info", py_capture_info, METH_O, "capture_info(id) -> (recorded, flushes, pending)"},
    {"capture_flush_touching", py_capture_flush_touching, METH_O,
     "Write the records pending on a tensor's memory in every active Capture."},
    {"storage_key", py_storage_key, METH_O, "The identity of a tensor's memory (its storage's address)."},
    {"capture_state", py_capture_state, METH_NOARGS,
     "(active Captures on this thread, whether the DeferredInit dispatch key is included)"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
