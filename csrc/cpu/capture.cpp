// paramops kernels: the fused mode's engine (capture.h).
#include <Python.h>

#include "cpu/capture.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/library.h>

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "cpu/checks.h"
#include "cpu/seeds.h"
#include "cpu/writer.h"
#include "paramops/codes.h"

namespace paramops {
namespace capture {
namespace {

constexpr c10::DispatchKey kKey = c10::DispatchKey::DeferredInit;

struct Record {
  at::Tensor t;
  int32_t kind;
  double p[4];
  int64_t seed, stream, offset;
  uintptr_t key;
  int64_t lo, hi;  // the bytes of its storage it can touch
  int64_t wave = 0, seq = 0;

  bool same_view(const Record& o) const {
    return t.storage_offset() == o.t.storage_offset() && t.sizes() == o.t.sizes() && t.strides() == o.t.strides() &&
           t.scalar_type() == o.t.scalar_type();
  }
};

// While our own bookkeeping runs (the fallback's work, a flush), ops pass straight
// through and nothing records: the Python TorchDispatchMode's "busy".
struct State {
  std::vector<std::shared_ptr<class Engine>> stack;  // active Captures, innermost last
  int busy = 0;
};
thread_local State tls;

struct Busy {
  Busy() { ++tls.busy; }
  ~Busy() { --tls.busy; }
};

class GIL {
 public:
  GIL() : s_(PyGILState_Ensure()) {}
  ~GIL() { PyGILState_Release(s_); }

 private:
  PyGILState_STATE s_;
};

void run_group(const std::vector<Record*>& recs);

class Engine {
 public:
  Engine(PyObject* resolve, std::vector<uintptr_t> watch, bool has_watch, bool eager)
      : resolve_(resolve), eager_(eager), has_watch_(has_watch), watch_(watch.begin(), watch.end()) {}
  ~Engine() {
    if (resolve_ != nullptr && Py_IsInitialized()) {
      GIL gil;
      Py_DECREF(resolve_);
    }
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  bool watching() const { return has_watch_; }
  bool pending(uintptr_t key) const { return pending_.count(key) != 0; }
  size_t npending() const {
    size_t n = 0;
    for (const auto& kv : pending_) n += kv.second.size();
    return n;
  }
  void note_write(uintptr_t key) {
    if (has_watch_ && watch_.count(key)) written_.insert(key);
  }

  void add(std::unique_ptr<Record> r) {
    r->seq = seq_++;
    ++recorded_;
    note_write(r->key);
    const uintptr_t key = r->key;
    std::vector<std::unique_ptr<Record>>& recs = pending_[key];
    const Record* last = nullptr;
    bool any = false;
    for (const auto& p : recs) {
      if (p->lo < r->hi && r->lo < p->hi) {
        any = true;
        if (last == nullptr || p->wave > last->wave || (p->wave == last->wave && p->seq > last->seq)) last = p.get();
      }
    }
    r->wave = 0;
    if (any) {
      bool replace = last->same_view(*r);
      for (const auto& p : recs) {
        if (p->lo < r->hi && r->lo < p->hi && p.get() != last && p->wave >= last->wave) replace = false;
      }
      if (replace) {  // the same view, nothing queued after it on this memory: replace it
        r->wave = last->wave;
        recs.erase(std::find_if(recs.begin(), recs.end(), [&](const auto& p) { return p.get() == last; }));
      } else {
        r->wave = last->wave + 1;
      }
    }
    recs.push_back(std::move(r));
    if (eager_) flush_keys({key}, false);
  }

  // Writes the pending records on `keys` (all when null), wave by wave. `resolve` (the
  // keyed mode) sees them first, in record order, and may give new (seed, stream,
  // offset) triples; if it raises, nothing is dropped. final: no record will follow.
  void flush_keys(std::vector<uintptr_t> keys, bool final) {
    Busy busy;  // also while resolve runs: the records below stay where they are
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::vector<Record*> recs;
    for (uintptr_t k : keys) {
      auto it = pending_.find(k);
      if (it == pending_.end()) continue;
      for (auto& r : it->second) recs.push_back(r.get());
    }
    if (recs.empty()) return;
    std::sort(recs.begin(), recs.end(), [](const Record* a, const Record* b) { return a->seq < b->seq; });
    if (resolve_ != nullptr) call_resolve(recs, final);
    std::vector<std::unique_ptr<Record>> owned;
    for (uintptr_t k : keys) {
      auto it = pending_.find(k);
      if (it == pending_.end()) continue;
      for (auto& r : it->second) owned.push_back(std::move(r));
      pending_.erase(it);
    }
    std::vector<int64_t> waves;
    for (const Record* r : recs) waves.push_back(r->wave);
    std::sort(waves.begin(), waves.end());
    waves.erase(std::unique(waves.begin(), waves.end()), waves.end());
    for (int64_t w : waves) {
      std::vector<Record*> group;
      for (Record* r : recs) {
        if (r->wave == w) group.push_back(r);
      }
      run_group(group);
      ++flushes_;
    }
  }

  std::vector<uintptr_t> keys() const {
    std::vector<uintptr_t> ks;
    for (const auto& kv : pending_) ks.push_back(kv.first);
    return ks;
  }
  void flush_all(bool final) { flush_keys(keys(), final); }

  int64_t recorded() const { return recorded_; }
  int64_t flushes() const { return flushes_; }
  std::vector<uintptr_t> written() const { return {written_.begin(), written_.end()}; }

  bool restore_key = false;  // whether DeferredInit was included before enter()

 private:
  // resolve([(tensor, kind), ...], final) -> [None | (seed, stream, offset), ...]
  void call_resolve(std::vector<Record*>& recs, bool final) {
    GIL gil;
    PyObject* items = PyList_New(static_cast<Py_ssize_t>(recs.size()));
    if (items == nullptr) throw python_error();
    for (size_t i = 0; i < recs.size(); ++i) {
      PyObject* t = THPVariable_Wrap(recs[i]->t);
      PyObject* k = PyLong_FromLong(recs[i]->kind);
      PyObject* item = (t && k) ? PyTuple_Pack(2, t, k) : nullptr;
      Py_XDECREF(t);
      Py_XDECREF(k);
      if (item == nullptr) {
        Py_DECREF(items);
        throw python_error();
      }
      PyList_SET_ITEM(items, static_cast<Py_ssize_t>(i), item);
    }
    PyObject* res = PyObject_CallFunctionObjArgs(resolve_, items, final ? Py_True : Py_False, nullptr);
    Py_DECREF(items);
    if (res == nullptr) throw python_error();
    PyObject* seq = PySequence_Fast(res, "paramops: a Capture's resolve must return a sequence");
    Py_DECREF(res);
    if (seq == nullptr) throw python_error();
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n != static_cast<Py_ssize_t>(recs.size())) {
      Py_DECREF(seq);
      PyErr_SetString(PyExc_ValueError, "paramops: a Capture's resolve must return one entry per record");
      throw python_error();
    }
    std::vector<std::tuple<int, int64_t, int64_t, int64_t>> got;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* v = PySequence_Fast_GET_ITEM(seq, i);
      if (v == Py_None) continue;
      long long s, st, off;
      if (!PyArg_ParseTuple(v, "LLL", &s, &st, &off)) {
        Py_DECREF(seq);
        throw python_error();
      }
      got.emplace_back(static_cast<int>(i), s, st, off);
    }
    Py_DECREF(seq);
    for (const auto& [i, s, st, off] : got) {
      recs[i]->seed = s;
      recs[i]->stream = st;
      recs[i]->offset = off;
    }
  }

  PyObject* resolve_;
  bool eager_, has_watch_;
  std::unordered_set<uintptr_t> watch_, written_;
  std::unordered_map<uintptr_t, std::vector<std::unique_ptr<Record>>> pending_;
  int64_t seq_ = 0, recorded_ = 0, flushes_ = 0;
};

// One multi_init_ call per device, in record order (no two records overlap).
void run_group(const std::vector<Record*>& recs) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("paramops::multi_init_", "")
                             .typed<void(at::TensorList, const at::Tensor&, const at::Tensor&,
                                         std::optional<int64_t>, bool)>();
  std::vector<std::pair<at::Device, std::vector<Record*>>> groups;
  for (Record* r : recs) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == r->t.device(); });
    if (it == groups.end()) {
      groups.emplace_back(r->t.device(), std::vector<Record*>{});
      it = groups.end() - 1;
    }
    it->second.push_back(r);
  }
  at::NoGradGuard no_grad;
  for (const auto& [device, group] : groups) {
    const int64_t n = static_cast<int64_t>(group.size());
    at::Tensor plan = at::empty({n, kPlanW}, at::TensorOptions().dtype(at::kLong));
    at::Tensor params = at::empty({n, kParamsW}, at::TensorOptions().dtype(at::kDouble));
    int64_t* pl = plan.data_ptr<int64_t>();
    double* pa = params.data_ptr<double>();
    std::vector<at::Tensor> tensors;
    tensors.reserve(group.size());
    for (int64_t i = 0; i < n; ++i) {
      const Record& r = *group[i];
      pl[i * kPlanW + PLAN_KIND] = r.kind;
      pl[i * kPlanW + PLAN_SEED] = r.seed;
      pl[i * kPlanW + PLAN_STREAM] = r.stream;
      pl[i * kPlanW + PLAN_OFFSET] = r.offset;
      for (int k = 0; k < kParamsW; ++k) pa[i * kParamsW + k] = r.p[k];
      tensors.push_back(r.t);
    }
    op.call(tensors, plan, params, std::nullopt, false);
  }
}

// ------------------------------------------------------------------ Python handles
std::unordered_map<int64_t, std::shared_ptr<Engine>>& engines() {  // under the GIL
  static auto* m = new std::unordered_map<int64_t, std::shared_ptr<Engine>>();
  return *m;
}
int64_t next_id = 1;

std::shared_ptr<Engine> engine(int64_t id) {
  auto it = engines().find(id);
  TORCH_CHECK(it != engines().end(), "paramops: no Capture with id ", std::to_string(id));
  return it->second;
}

// ------------------------------------------------------------------ memory
std::pair<int64_t, int64_t> span(const at::Tensor& t) {
  const int64_t es = t.element_size();
  int64_t ext = 1;
  for (int64_t d = 0; d < t.dim(); ++d) ext += (t.size(d) - 1) * t.stride(d);
  const int64_t lo = t.storage_offset() * es;
  return {lo, lo + ext * es};
}

template <class F>
void for_tensors(const c10::IValue& v, const F& fn) {
  if (v.isTensor()) {
    fn(v.toTensor());
  } else if (v.isTensorList()) {
    for (const at::Tensor& t : v.toTensorVector()) fn(t);
  } else if (v.isList()) {
    for (const c10::IValue& x : v.toListRef()) {
      if (x.isTensor()) fn(x.toTensor());
    }
  }
}

// Writes the records pending on `keys` in every active Capture, outermost first (its
// records are older than an inner Capture's).
void barrier(const std::vector<uintptr_t>& keys) {
  if (keys.empty()) return;
  const auto stack = tls.stack;  // a copy: a flush may not change it, but be safe
  for (const auto& e : stack) {
    std::vector<uintptr_t> mine;
    for (uintptr_t k : keys) {
      if (e->pending(k)) mine.push_back(k);
    }
    if (!mine.empty()) e->flush_keys(mine, false);
  }
}

// ------------------------------------------------------------------ the fallback
enum OpClass : uint8_t { OC_OTHER, OC_PASSIVE, OC_PARAMOPS, OC_NORMAL, OC_UNIFORM, OC_FILL_S, OC_FILL_T, OC_ZERO };

OpClass classify_uncached(const c10::OperatorHandle& op) {
  const c10::OperatorName& n = op.operator_name();
  const std::string& name = n.name;
  const std::string& ov = n.overload_name;
  if (name.rfind("paramops::", 0) == 0) {  // the single ops record themselves; the others run
    return name == "paramops::multi_init_" || name == "paramops::tied_grad_" ? OC_OTHER : OC_PARAMOPS;
  }
  if (name == "aten::normal_" && ov.empty()) return OC_NORMAL;
  if (name == "aten::uniform_" && ov.empty()) return OC_UNIFORM;
  if (name == "aten::fill_" && ov == "Scalar") return OC_FILL_S;
  if (name == "aten::fill_" && ov == "Tensor") return OC_FILL_T;
  if (name == "aten::zero_" && ov.empty()) return OC_ZERO;
  // Ops that take a pending tensor but never read or write its values.
  static const std::unordered_set<std::string> metadata_only = {
      "aten::empty_like", "aten::new_empty", "aten::new_empty_strided", "aten::new_zeros", "aten::new_ones",
      "aten::new_full", "aten::zeros_like", "aten::ones_like", "aten::full_like", "aten::sym_size",
      "aten::sym_stride", "aten::sym_numel", "aten::sym_storage_offset", "aten::is_same_size",
      "aten::_has_compatible_shallow_copy_type", "aten::size", "aten::stride", "aten::numel", "aten::dim",
      "aten::storage_offset", "aten::is_complex", "aten::is_floating_point"};
  if (metadata_only.count(name)) return OC_PASSIVE;
  // No tensor argument (a factory such as aten::empty): nothing to guard.
  bool tensors = false;
  for (const c10::Argument& a : op.schema().arguments()) tensors |= a.type()->str().find("Tensor") != std::string::npos;
  if (!tensors) return OC_PASSIVE;
  // Views: an argument aliased without being written (as torch's OpOverload.is_view).
  for (const c10::Argument& a : op.schema().arguments()) {
    if (a.alias_info() != nullptr && !a.alias_info()->isWrite()) return OC_PASSIVE;
  }
  return OC_OTHER;
}

OpClass classify(const c10::OperatorHandle& op) {
  static thread_local std::unordered_map<const c10::FunctionSchema*, OpClass> cache;
  const c10::FunctionSchema* key = &op.schema();
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const OpClass c = classify_uncached(op);
  cache.emplace(key, c);
  return c;
}

// What torch's Tensor.normal_ / uniform_ / fill_ / zero_ on `self` become, recorded;
// false: run it as torch would (it is not a float tensor paramops can write, autograd
// would see it, or paramops' checks refuse its parameters).
bool record_aten(OpClass oc, const c10::IValue* args, Engine& e) {
  const at::Tensor& self = args[0].toTensor();
  if (!self.defined() || self.layout() != at::kStrided) return false;
  const int dt = cpu::dtype_code(self.scalar_type());
  const c10::DeviceType dev = self.device().type();
  if (dt < 0 || (dev != c10::DeviceType::CPU && dev != c10::DeviceType::CUDA)) return false;
  static const c10::DispatchKeySet wrappers({c10::DispatchKey::Python, c10::DispatchKey::FuncTorchBatched,
                                             c10::DispatchKey::FuncTorchGradWrapper, c10::DispatchKey::Batched,
                                             c10::DispatchKey::BatchedNestedTensor});
  if (self.key_set().has_any(wrappers) || self.is_neg()) return false;
  if (at::GradMode::is_enabled() && self.requires_grad()) return false;  // autograd raises or records it
  if (self.is_inference()) return false;  // torch raises outside inference mode; inside, written at once
  if (at::has_internal_overlap(self) == at::MemOverlap::Yes) return false;
  int kind = KIND_FILL;
  double p[4] = {0.0, 0.0, 0.0, 0.0};
  std::optional<at::Generator> gen;
  switch (oc) {
    case OC_NORMAL:
      kind = KIND_NORMAL;
      p[0] = args[1].toDouble();
      p[1] = args[2].toDouble();
      gen = args[3].toOptional<at::Generator>();
      break;
    case OC_UNIFORM:
      p[0] = args[1].toDouble();
      p[1] = args[2].toDouble();
      kind = p[0] == p[1] ? KIND_FILL : KIND_UNIFORM;  // torch fills `from` when from == to
      gen = args[3].toOptional<at::Generator>();
      break;
    case OC_FILL_S: {
      const c10::Scalar v = args[1].toScalar();
      if (v.isComplex()) return false;
      p[0] = v.toDouble();
      break;
    }
    case OC_FILL_T: {
      const at::Tensor& v = args[1].toTensor();
      if (v.dim() != 0 || !v.device().is_cpu() || v.is_complex() || v.layout() != at::kStrided) return false;
      p[0] = v.item<double>();
      break;
    }
    default:
      break;  // zero_
  }
  if (!cpu::kind_params_ok(kind, dt, p)) return false;
  const int64_t seed = kind == KIND_FILL ? 0 : cpu::draw_seed(gen.has_value() ? *gen : at::Generator());
  cpu::bump_version(self);
  if (self.numel() == 0) return true;
  auto r = std::make_unique<Record>();
  r->t = self;
  r->kind = kind;
  std::copy(p, p + 4, r->p);
  r->seed = seed;
  r->stream = 0;
  r->offset = 0;
  r->key = storage_key(self);
  std::tie(r->lo, r->hi) = span(self);
  e.add(std::move(r));
  return true;
}

void redispatch(const c10::OperatorHandle& op, c10::DispatchKeySet ks, torch::jit::Stack* stack) {
  // Below this key, and without it for what the op calls in turn (as a Python mode is
  // not seen by the ops its own handler runs).
  c10::impl::ExcludeDispatchKeyGuard guard(kKey);
  op.redispatchBoxed(ks & c10::DispatchKeySet(c10::DispatchKeySet::FULL_AFTER, kKey), stack);
}

void fallback(const c10::OperatorHandle& op, c10::DispatchKeySet ks, torch::jit::Stack* stack) {
  if (tls.stack.empty() || tls.busy > 0) return redispatch(op, ks, stack);
  OpClass oc = classify(op);
  if (oc == OC_PASSIVE) return redispatch(op, ks, stack);  // reads no values, writes nothing
  const auto& schema = op.schema();
  const size_t nargs = schema.arguments().size();
  const c10::IValue* args = stack->data() + (stack->size() - nargs);
  if (oc == OC_PARAMOPS) {
    // Its kernel checks and records, except on a view with the negative bit: torch's Negative
    // fallback (below) hands the kernel a copy and writes it back at once, so that call runs
    // now, after the pending work on its memory.
    if (!args[0].isTensor() || !args[0].toTensor().is_neg()) return redispatch(op, ks, stack);
    oc = OC_OTHER;
  }
  {
    Busy busy;
    if (oc >= OC_NORMAL && record_aten(oc, args, *tls.stack.back())) {
      c10::IValue self = args[0];
      torch::jit::drop(*stack, nargs);
      stack->push_back(std::move(self));  // Tensor(a!): the op returns self
      return;
    }
    {
      std::vector<uintptr_t> keys;
      for (size_t i = 0; i < nargs; ++i) {
        for_tensors(args[i], [&](const at::Tensor& t) {
          const uintptr_t k = storage_key(t);
          if (k != 0) keys.push_back(k);
        });
      }
      barrier(keys);
    }
    bool watching = false;
    for (const auto& e : tls.stack) watching |= e->watching();
    if (watching) {
      for (size_t i = 0; i < nargs; ++i) {
        const c10::AliasInfo* ai = schema.arguments()[i].alias_info();
        if (ai == nullptr || !ai->isWrite()) continue;
        for_tensors(args[i], [&](const at::Tensor& t) {
          const uintptr_t k = storage_key(t);
          if (k == 0) return;
          for (const auto& e : tls.stack) e->note_write(k);
        });
      }
    }
  }
  if (classify(op) == OC_PARAMOPS) {  // the view with the negative bit: written now, not recorded
    Busy busy;
    return redispatch(op, ks, stack);
  }
  redispatch(op, ks, stack);
}

}  // namespace

uintptr_t storage_key(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage() || t.device().is_meta()) return 0;
  return reinterpret_cast<uintptr_t>(t.unsafeGetTensorImpl()->unsafe_storage().data());
}

bool record(const at::Tensor& t, int kind, const double (&p)[4], int64_t seed, int64_t stream, int64_t offset) {
  // (An inference tensor is written at once: a flush outside inference mode could not write it.)
  if (tls.stack.empty() || tls.busy > 0 || t.is_inference()) return false;
  Engine& e = *tls.stack.back();
  Busy busy;
  auto r = std::make_unique<Record>();
  r->t = t;
  r->kind = kind;
  std::copy(p, p + 4, r->p);
  r->seed = seed;
  r->stream = stream;
  r->offset = kind == KIND_FILL ? 0 : offset;
  r->key = storage_key(t);
  std::tie(r->lo, r->hi) = span(t);
  e.add(std::move(r));
  return true;
}

int64_t enter(void* resolve, std::vector<uintptr_t> watch, bool has_watch, bool eager) {
  PyObject* res = static_cast<PyObject*>(resolve);
  Py_XINCREF(res);
  auto e = std::make_shared<Engine>(res, std::move(watch), has_watch, eager);
  e->restore_key = c10::impl::tls_is_dispatch_key_included(kKey);
  c10::impl::tls_set_dispatch_key_included(kKey, true);
  tls.stack.push_back(e);
  const int64_t id = next_id++;
  engines().emplace(id, e);
  return id;
}

std::tuple<int64_t, int64_t, std::vector<uintptr_t>> exit(int64_t id) {
  std::shared_ptr<Engine> e = engine(id);
  engines().erase(id);
  TORCH_CHECK(!tls.stack.empty() && tls.stack.back() == e,
              "paramops: Captures must be exited in the reverse order of entering them, on their thread");
  tls.stack.pop_back();
  c10::impl::tls_set_dispatch_key_included(kKey, e->restore_key);
  // The outer Captures see these writes: first their own records on this memory, and
  // the watched keys written.
  const std::vector<uintptr_t> keys = e->keys();
  if (!tls.stack.empty()) {
    Busy busy;
    barrier(keys);
    for (const auto& outer : tls.stack) {
      for (uintptr_t k : keys) outer->note_write(k);
    }
  }
  e->flush_all(true);
  return {e->recorded(), e->flushes(), e->written()};
}

void flush(int64_t id) {
  std::shared_ptr<Engine> e = engine(id);
  if (tls.busy > 0) return;
  e->flush_all(false);
}

std::tuple<int64_t, int64_t, int64_t> info(int64_t id) {
  std::shared_ptr<Engine> e = engine(id);
  return {e->recorded(), e->flushes(), static_cast<int64_t>(e->npending())};
}

std::pair<int64_t, bool> state() {
  return {static_cast<int64_t>(tls.stack.size()), c10::impl::tls_is_dispatch_key_included(kKey)};
}

void flush_touching(const at::Tensor& t) {
  if (tls.stack.empty() || tls.busy > 0) return;
  const uintptr_t k = storage_key(t);
  if (k == 0) return;
  Busy busy;
  barrier({k});
}

}  // namespace capture
}  // namespace paramops

TORCH_LIBRARY_IMPL(_, DeferredInit, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&paramops::capture::fallback>());
}
