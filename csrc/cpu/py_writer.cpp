// paramops kernels: a Writer that calls a Python object (writer.h), for the backends
// written in Python: the Triton kernels (paramops/backends/triton.py) and the Python
// reference (paramops/backends/reference.py). The C++ kernel has done every check,
// drawn the seed and bumped the version counter; the object only writes:
//
//   obj.random(self, kind, p, seed, stream, offset)
//       kind KIND_*, p the Job's six parameters in the compute type (exact Python
//       floats), seed and stream as int64;
//   obj.multi(tensors, table)
//       the multi table (multi.h multi_table, codes.h TC_*): every entry but the
//       fills that are not one strided run, which the kernel has written with
//       Tensor.fill_;
//   obj.tied(groups)
//       tied_grad_'s groups as [(dests, sources, scale, accumulate)].
#include <Python.h>

#include <ATen/ATen.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include "cpu/multi.h"
#include "cpu/writer.h"

namespace paramops {
namespace cpu {
namespace {

struct GIL {
  PyGILState_STATE s = PyGILState_Ensure();
  ~GIL() { PyGILState_Release(s); }
};

PyObject* checked(PyObject* o) {
  if (o == nullptr) throw python_error();
  return o;
}

// A new Python list of the tensors of ts (a std::vector or Tensors).
template <class L>
PyObject* tensor_list(const L& ts) {
  PyObject* list = checked(PyList_New(static_cast<Py_ssize_t>(ts.size())));
  for (size_t i = 0; i < ts.size(); ++i) {
    PyObject* t = THPVariable_Wrap(ts[i]);
    if (t == nullptr) {
      Py_DECREF(list);
      throw python_error();
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), t);
  }
  return list;
}

class PyWriter final : public Writer {
 public:
  explicit PyWriter(PyObject* obj) : obj_(obj) { Py_INCREF(obj_); }  // kept for the life of the process

  void random(const at::Tensor& self, const Job& job, int64_t offset, const char*) override {
    GIL gil;
    PyObject* p = checked(PyTuple_New(6));
    for (int k = 0; k < 6; ++k) {
      const double v = job.dtype == DT_F64 ? job.pd[k] : static_cast<double>(job.pf[k]);
      PyTuple_SET_ITEM(p, k, PyFloat_FromDouble(v));
    }
    PyObject* t = THPVariable_Wrap(self);
    PyObject* res = t == nullptr ? nullptr
                                 : PyObject_CallMethod(obj_, "random", "OiOLLL", t, job.kind, p,
                                                       static_cast<long long>(job.seed),
                                                       static_cast<long long>(job.stream),
                                                       static_cast<long long>(offset));
    Py_XDECREF(t);
    Py_DECREF(p);
    Py_XDECREF(checked(res));
  }

  void multi(Tensors tensors, const Scratch& sc) override {
    for (const Entry& en : sc.strided) {  // fills not in the table: torch's own fill, as the fill_ op
      const Tmpl& tp = sc.tmpls[en.tmpl];
      if (tp.kind == KIND_FILL && one_run_stride(tensors[en.index]) == kNotOneRun) {
        fill_below_autograd(tensors[en.index], tp.fill_value);
      }
    }
    at::Tensor table = multi_table(tensors, sc);
    if (table.size(0) == 0) return;
    GIL gil;
    PyObject* list = tensor_list(tensors);
    PyObject* tab = THPVariable_Wrap(table);
    PyObject* res = tab == nullptr ? nullptr : PyObject_CallMethod(obj_, "multi", "OO", list, tab);
    Py_XDECREF(tab);
    Py_DECREF(list);
    Py_XDECREF(checked(res));
  }

  void tied(const std::vector<TiedGroup>& groups) override {
    GIL gil;
    PyObject* list = checked(PyList_New(static_cast<Py_ssize_t>(groups.size())));
    try {
      for (size_t g = 0; g < groups.size(); ++g) {
        PyObject* d = tensor_list(groups[g].dst);
        PyObject* s = tensor_list(groups[g].src);
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(g),
                        checked(Py_BuildValue("(NNdO)", d, s, groups[g].scale, groups[g].add ? Py_True : Py_False)));
      }
    } catch (...) {
      Py_DECREF(list);
      throw;
    }
    PyObject* res = PyObject_CallMethod(obj_, "tied", "O", list);
    Py_DECREF(list);
    Py_XDECREF(checked(res));
  }

 private:
  PyObject* obj_;
};

}  // namespace

Writer* python_writer(void* obj) { return new PyWriter(static_cast<PyObject*>(obj)); }

}  // namespace cpu
}  // namespace paramops
