// paramops kernels: seeds and generator handles (seeds.h).
#include "cpu/seeds.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>

#include <limits>
#include <mutex>
#include <unordered_map>

namespace paramops {
namespace cpu {
namespace {

struct Registry {
  std::mutex mu;
  int64_t next = 1;
  // impl -> (handle, weak ref): a dead generator's impl address can be reused, so an
  // entry counts only while its weak ref still reaches the same impl.
  std::unordered_map<const c10::GeneratorImpl*, std::pair<int64_t, c10::weak_intrusive_ptr<c10::GeneratorImpl>>>
      by_impl;
  std::unordered_map<int64_t, c10::weak_intrusive_ptr<c10::GeneratorImpl>> by_handle;
  size_t prune_at = 64;

  void prune() {  // drop the entries of dead generators (amortized: when the maps double)
    for (auto it = by_handle.begin(); it != by_handle.end();) {
      it = it->second.expired() ? by_handle.erase(it) : std::next(it);
    }
    for (auto it = by_impl.begin(); it != by_impl.end();) {
      it = it->second.second.expired() ? by_impl.erase(it) : std::next(it);
    }
    prune_at = 2 * by_handle.size() + 64;
  }
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: generators may outlive static destruction
  return *r;
}

// torch.randint(-2**63, 2**63 - 1): range 2^64 - 1 from base -2^63 (at::native's random_from_to).
constexpr uint64_t kRange = std::numeric_limits<uint64_t>::max();
constexpr int64_t kBase = std::numeric_limits<int64_t>::min();

}  // namespace

int64_t generator_handle(const at::Generator& gen) {
  TORCH_CHECK(gen.defined(), "paramops.generator_handle: got an undefined generator");
  const c10::intrusive_ptr<c10::GeneratorImpl>& impl = gen.getIntrusivePtr();
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_impl.find(impl.get());
  if (it != r.by_impl.end()) {
    if (it->second.second.lock().get() == impl.get()) return it->second.first;
    r.by_impl.erase(it);  // a dead generator's address, reused
  }
  if (r.by_handle.size() >= r.prune_at) r.prune();
  const int64_t h = r.next++;
  c10::weak_intrusive_ptr<c10::GeneratorImpl> weak(impl);
  r.by_impl.emplace(impl.get(), std::make_pair(h, weak));
  r.by_handle.emplace(h, weak);
  return h;
}

at::Generator generator_of(const std::optional<int64_t>& handle, const Subject& s) {
  if (!handle.has_value()) return at::Generator();
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_handle.find(*handle);
  c10::intrusive_ptr<c10::GeneratorImpl> impl;
  if (it != r.by_handle.end()) impl = it->second.lock();
  TORCH_CHECK_VALUE(impl, "paramops.", s.op, ": generator ", std::to_string(*handle),
                    " is not the handle of a live torch.Generator (pass generator=g to the paramops "
                    "functions, or paramops.generator_handle(g) to torch.ops.paramops)");
  return at::Generator(std::move(impl));
}

void draw_seeds(const at::Generator& gen_arg, int64_t n, int64_t* out) {
  if (n <= 0) return;
  const at::Generator gen = gen_arg.defined() ? gen_arg : at::detail::getDefaultCPUGenerator();
  if (gen.device().is_cpu()) {
    at::CPUGeneratorImpl* g = at::check_generator<at::CPUGeneratorImpl>(gen);
    std::lock_guard<std::mutex> lock(g->mutex_);
    const at::uniform_int_from_to_distribution<int64_t> dist(kRange, kBase);
    for (int64_t i = 0; i < n; ++i) out[i] = dist(g);
    return;
  }
  // Another device's generator (CUDA): its own randint, as torch.randint with it draws.
  for (int64_t i = 0; i < n; ++i) {
    out[i] = at::randint(kBase, std::numeric_limits<int64_t>::max(), {}, gen,
                         at::TensorOptions().dtype(at::kLong).device(gen.device()))
                 .item<int64_t>();
  }
}

int64_t draw_seed(const at::Generator& gen) {
  int64_t s = 0;
  draw_seeds(gen, 1, &s);
  return s;
}

}  // namespace cpu
}  // namespace paramops
