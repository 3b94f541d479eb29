// oneDNN's convolution kernels as XLA FFI handlers for the CPU: the forward, the input
// gradient and the weight gradient of a transposed convolution, 1-3 spatial axes,
// channels-first or channels-last, any groups. Operands in float32, or in bfloat16 /
// float16 for oneDNN's native half-precision kernels (float32 accumulation; the forward may
// write float32, the weight gradient always does): each buffer's dtype is read from XLA's
// buffer and is part of the cached problem.
//
// A transposed convolution is the adjoint of the regular convolution with the same weight,
// so its three maps are oneDNN's three convolution primitives (see `create`): its forward is
// the convolution's backward data, its input gradient the convolution's forward (which is
// what convt_jax's regular convolution calls), its weight gradient the convolution's
// backward weights. PyTorch's transposed weight (C_in, C_out / groups, *K) is, as stored,
// the weight of that convolution (output channels first), so it needs no transposition.
//
// Built and loaded by convt_jax/_onednn.py (against the XLA FFI headers of the jaxlib in
// use and the oneDNN of the `onednn` extra); registered as three FFI targets for the "cpu"
// platform and called with jax.ffi.ffi_call from the primitive's CPU lowering.
//
// A memory descriptor with the operand's strides describes the layout XLA hands over
// (row-major, in the layout given by `channels_last`). The weight (or its gradient) is
// always reordered into the blocked layout the kernel prefers; the activations are read
// where they are (channels-last forward and input gradient) or reordered into the layout
// oneDNN chooses (channels-first activations, the channels-last weight gradient): see
// `build` for the rule.
//
// Each (kind, shapes, settings) gets its primitive descriptor, primitive and reorders built
// once and cached (a mutex guards the cache; execution runs outside it). Scratch memory
// (the kernel's scratchpad, the reordered operands) comes from per-thread arenas that only
// grow, so a call allocates nothing once warm, and concurrent calls from XLA's threads
// never share a buffer.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

enum Kind : int64_t { kForward = 0, kInputGrad = 1, kWeightGrad = 2 };

using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

// One transposed-convolution problem: logical shapes in oneDNN's order (N, C, spatial...)
// and the settings; `key()` identifies it in the cache. `src` and `dst` are the transposed
// convolution's input x and output y (the convolution's output and input).
struct Problem {
  Kind kind;
  bool channels_last;
  int64_t groups;
  dims src, dst;          // x: (N, C_in, *S); y: (N, C_out, *S_out)
  dims kernel;            // K
  dims strides, dilates, pad_l, pad_r;
  // The dtypes of x, y and the weight as stored (whichever of them are gradients).
  dt src_dt = dt::f32, dst_dt = dt::f32, wei_dt = dt::f32;

  std::string key() const {
    std::vector<int64_t> v{kind,
                           channels_last,
                           groups,
                           static_cast<int64_t>(src.size()),
                           static_cast<int64_t>(src_dt),
                           static_cast<int64_t>(dst_dt),
                           static_cast<int64_t>(wei_dt)};
    for (const dims* d : {&src, &dst, &kernel, &strides, &dilates, &pad_l, &pad_r})
      v.insert(v.end(), d->begin(), d->end());
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int64_t));
  }

  int64_t c_in() const { return src[1]; }
  int64_t c_out() const { return dst[1]; }
};

// Row-major strides of an activation given in oneDNN's logical order (N, C, *S), stored
// channels-first (N, C, *S) or channels-last (N, *S, C).
dims activation_strides(const dims& shape, bool channels_last) {
  const size_t r = shape.size();
  dims strides(r);
  if (!channels_last) {
    int64_t s = 1;
    for (size_t i = r; i-- > 0;) { strides[i] = s; s *= shape[i]; }
    return strides;
  }
  // Physical order: N, S_0, ..., S_{r-3}, C.
  int64_t s = 1;
  strides[1] = s; s *= shape[1];
  for (size_t i = r; i-- > 2;) { strides[i] = s; s *= shape[i]; }
  strides[0] = s;
  return strides;
}

// The weight stored as PyTorch's (C_in, C_out / g, *K): in the convolution's logical order
// (its output channels are x's) that is (C_in, C_out, *K), or (g, C_in / g, C_out / g, *K)
// with groups, row-major as it is.
dnnl::memory::desc user_weight_desc(const Problem& p) {
  const int64_t g = p.groups;
  dims shape{p.c_in(), p.c_out() / g};
  if (g > 1) shape = {g, p.c_in() / g, p.c_out() / g};
  shape.insert(shape.end(), p.kernel.begin(), p.kernel.end());
  dims strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) { strides[i] = s; s *= shape[i]; }
  return dnnl::memory::desc(shape, p.wei_dt, strides);
}

dnnl::memory::desc activation_desc(const dims& shape, dt type, bool channels_last) {
  return dnnl::memory::desc(shape, type, activation_strides(shape, channels_last));
}

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One operand of a cached problem: its layout as XLA hands it over (`user`), the layout the
// kernel reads or writes (`kernel`) and, where they differ, the reorder between them
// (user -> kernel for an input, kernel -> user for an output).
struct Operand {
  dnnl::memory::desc user, kernel;
  bool reorder = false;
  dnnl::primitive convert;
};

// A cached problem: the primitive, its three operands (x, y and the weight, whichever of
// them are gradients) and the scratchpad.
struct Entry {
  dnnl::primitive primitive;
  Operand src, dst, weight;
  size_t scratchpad_bytes = 0;
  dnnl::memory::desc scratchpad;  // scratchpad_bytes of bytes
  std::string impl;
  std::atomic<bool> ran{false};  // executed at least once (probing alone does not count)
};

dnnl::memory::desc any_like(const dnnl::memory::desc& d) {
  return dnnl::memory::desc(d.get_dims(), d.get_data_type(), dnnl::memory::format_tag::any);
}

// Whether an implementation's name (e.g. "conv:any+x64:gemm:jit") has `token` as one of
// its ':'/'+'-separated parts.
bool has_token(const std::string& impl, const char* token) {
  size_t start = 0;
  while (start <= impl.size()) {
    size_t end = impl.find_first_of(":+", start);
    if (end == std::string::npos) end = impl.size();
    if (impl.compare(start, end - start, token) == 0) return true;
    start = end + 1;
  }
  return false;
}

// Whether an implementation's name (e.g. "conv:any+ref:any") names oneDNN's reference kernel.
bool is_reference(const std::string& impl) { return has_token(impl, "ref"); }

// Channels-last strides for activations given in oneDNN's logical order (N, C, *S).
dnnl::memory::desc channels_last_desc(const dnnl::memory::desc& d) {
  return dnnl::memory::desc(d.get_dims(), d.get_data_type(),
                            activation_strides(d.get_dims(), true));
}

// Whether an implementation's name names oneDNN's GEMM-based (im2col) convolution, its
// fallback where no direct kernel takes the layouts (e.g. "conv:any+x64:gemm:jit"; the
// brgemm-based direct kernels are "brgconv", "brg_conv", "brgemm...": other tokens).
bool is_gemm(const std::string& impl) { return has_token(impl, "gemm"); }

// The primitive of `p` with the activations in the layouts `src` (x's) and `dst` (y's),
// given or `any`, and the weight in the layout the kernel chooses: oneDNN's convolution
// primitives, the transposed convolution's three maps read as the regular convolution's
// they are (x has the regular convolution's output shape, y its input's):
//   kForward    y = x^T * w   convolution backward data:    diff_dst = x, diff_src = y
//   kInputGrad  dx = conv(g)  convolution forward:          src = g, dst = dx
//   kWeightGrad dw            convolution backward weights: src = g, diff_dst = x
void create(const Problem& p, const dnnl::memory::desc& src, const dnnl::memory::desc& dst,
            Entry& entry, dnnl::primitive_desc_base& pd) {
  const auto& eng = cpu_engine();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto wei = any_like(entry.weight.user);
  auto algo = dnnl::algorithm::convolution_direct;
  if (p.kind == kInputGrad) {
    dnnl::convolution_forward::primitive_desc fwd(eng, dnnl::prop_kind::forward_training, algo,
                                                  dst, wei, src, p.strides, p.dilates,
                                                  p.pad_l, p.pad_r, attr);
    entry.primitive = dnnl::convolution_forward(fwd);
    entry.dst.kernel = fwd.src_desc();
    entry.src.kernel = fwd.dst_desc();
    entry.weight.kernel = fwd.weights_desc();
    entry.impl = fwd.impl_info_str();
    pd = fwd;
    return;
  }
  // The gradients' forward hint, every operand in x's dtype (a half-precision layer's weight
  // gradient is float32, its weights are not; its forward may write float32).
  const auto in_x_dtype = [&](const dnnl::memory::desc& d) {
    return dnnl::memory::desc(d.get_dims(), p.src_dt, dnnl::memory::format_tag::any);
  };
  dnnl::convolution_forward::primitive_desc hint(
      eng, dnnl::prop_kind::forward_training, algo, in_x_dtype(dst), in_x_dtype(wei),
      in_x_dtype(src), p.strides, p.dilates, p.pad_l, p.pad_r, attr);
  if (p.kind == kForward) {
    dnnl::convolution_backward_data::primitive_desc bwd(
        eng, algo, dst, wei, src, p.strides, p.dilates, p.pad_l, p.pad_r, hint, attr);
    entry.primitive = dnnl::convolution_backward_data(bwd);
    entry.dst.kernel = bwd.diff_src_desc();
    entry.src.kernel = bwd.diff_dst_desc();
    entry.weight.kernel = bwd.weights_desc();
    entry.impl = bwd.impl_info_str();
    pd = bwd;
    return;
  }
  dnnl::convolution_backward_weights::primitive_desc bwd(
      eng, algo, dst, wei, src, p.strides, p.dilates, p.pad_l, p.pad_r, hint, attr);
  entry.primitive = dnnl::convolution_backward_weights(bwd);
  entry.dst.kernel = bwd.src_desc();
  entry.src.kernel = bwd.diff_dst_desc();
  entry.weight.kernel = bwd.diff_weights_desc();
  entry.impl = bwd.impl_info_str();
  pd = bwd;
}

// Whether oneDNN runs its AVX-512 kernels (avx512_core or a later ISA) here, as it sees the
// CPU (ONEDNN_MAX_CPU_ISA lowers it).
bool avx512() {
  static const bool yes = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto want = static_cast<unsigned>(dnnl_cpu_isa_avx512_core);
    return (isa & want) == want;
  }();
  return yes;
}

std::shared_ptr<Entry> build(const Problem& p) {
  const auto& eng = cpu_engine();
  const auto src_user = activation_desc(p.src, p.src_dt, p.channels_last);
  const auto dst_user = activation_desc(p.dst, p.dst_dt, p.channels_last);
  // The activation layouts to try, in order; the weight's is always the kernel's choice
  // (a blocked one).
  //  * Channels-first activations: the kernel's choice (`any`; oneDNN's kernels for plain
  //    NC* layouts are GEMM-based and slower than its blocked ones by more than the
  //    reorders cost, and PyTorch does the same through oneDNN), then channels-last.
  //  * Channels-last, forward and input gradient: read in place (as PyTorch does), then
  //    the kernel's choice.
  //  * Channels-last, weight gradient: on AVX-512 (oneDNN's avx512_core kernels and up) in
  //    place, then the kernel's choice, as PyTorch does; on older ISAs the kernel's choice,
  //    then in place.  The AVX-512 weight-gradient kernels read channels-last activations
  //    about as fast as blocked ones, so the two reorders are saved (2-core Xeon: the
  //    channels-last forward+backward of 8 layers 0.96 -> 0.86 of PyTorch's time, none
  //    slower); oneDNN 3.2's AVX2 ones can be several times slower in place, reorders
  //    included (2-core AVX2 EPYC: a 1-D layer 188 -> 53 ms, wide2d 140 -> 87 ms; the Xeon
  //    capped at AVX2 by ONEDNN_MAX_CPU_ISA: conv1d 52 -> 28 ms; benchmarks/RESULTS.md).
  // The first candidate is taken unless it is oneDNN's GEMM-based fallback (e.g. the input
  // gradient of HiFi-GAN's 1-D upsamplers at batch 1: 15-20x its forward's time): then the
  // first later one with a direct kernel, or, if all are GEMM-based, the one that needs no
  // reorder of the activations (the in-place one).
  const auto any_src = any_like(src_user), any_dst = any_like(dst_user);
  std::vector<std::pair<dnnl::memory::desc, dnnl::memory::desc>> layouts;
  if (!p.channels_last) {
    layouts = {{any_src, any_dst}, {channels_last_desc(src_user), channels_last_desc(dst_user)}};
  } else if (p.kind == kWeightGrad && !avx512()) {
    layouts = {{any_src, any_dst}, {src_user, dst_user}};
  } else {
    layouts = {{src_user, dst_user}, {any_src, any_dst}};
  }
  std::shared_ptr<Entry> entry, in_place;
  dnnl::primitive_desc_base pd, in_place_pd;
  for (size_t i = 0; i < layouts.size(); ++i) {
    auto candidate = std::make_shared<Entry>();
    candidate->src.user = src_user;
    candidate->dst.user = dst_user;
    candidate->weight.user = user_weight_desc(p);
    dnnl::primitive_desc_base candidate_pd;
    try {
      create(p, layouts[i].first, layouts[i].second, *candidate, candidate_pd);
    } catch (const dnnl::error&) {
      if (i == 0) throw;  // no primitive for the layouts oneDNN is asked for first
      continue;           // no primitive for those layouts: not a candidate
    }
    if (i > 0 && is_reference(candidate->impl)) continue;
    if (i == 0) {
      entry = candidate;
      pd = candidate_pd;
    }
    if (candidate->src.kernel == src_user && candidate->dst.kernel == dst_user) {
      in_place = candidate;
      in_place_pd = candidate_pd;
    }
    if (!is_gemm(candidate->impl)) {
      entry = candidate;
      pd = candidate_pd;
      break;
    }
  }
  if (is_gemm(entry->impl) && in_place) {
    entry = in_place;
    pd = in_place_pd;
  }
  entry->scratchpad_bytes = pd.scratchpad_desc().get_size();
  // Which operands are outputs: the destination of the forward, the source of the input
  // gradient, the weight of the weight gradient.
  const bool out[3] = {p.kind == kInputGrad, p.kind == kForward, p.kind == kWeightGrad};
  Operand* ops[3] = {&entry->src, &entry->dst, &entry->weight};
  for (int i = 0; i < 3; ++i) {
    Operand& op = *ops[i];
    op.reorder = op.kernel != op.user;
    if (!op.reorder) continue;
    dnnl::primitive_attr rattr;
    rattr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::reorder::primitive_desc rpd(eng, out[i] ? op.kernel : op.user, eng,
                                      out[i] ? op.user : op.kernel, rattr);
    op.convert = dnnl::reorder(rpd);
    entry->scratchpad_bytes = std::max(entry->scratchpad_bytes, rpd.scratchpad_desc().get_size());
  }
  entry->scratchpad = dnnl::memory::desc({static_cast<int64_t>(entry->scratchpad_bytes)},
                                         dnnl::memory::data_type::u8,
                                         dnnl::memory::format_tag::a);
  return entry;
}

std::mutex cache_mutex;
std::unordered_map<std::string, std::shared_ptr<Entry>>& cache() {
  static auto* c = new std::unordered_map<std::string, std::shared_ptr<Entry>>();
  return *c;
}

std::shared_ptr<Entry> primitive_for(const Problem& p) {
  const std::string key = p.key();
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache().find(key);
    if (it != cache().end()) return it->second;
  }
  auto entry = build(p);  // outside the lock: creation can take milliseconds
  std::lock_guard<std::mutex> lock(cache_mutex);
  return cache().emplace(key, std::move(entry)).first->second;
}

// Drop a problem from the cache (a probed primitive that will not be used).
void forget(const Problem& p) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  cache().erase(p.key());
}

// A per-thread buffer that only grows, 64-byte aligned.
struct Arena {
  void* data = nullptr;
  size_t size = 0;
  ~Arena() { std::free(data); }
  void* get(size_t bytes) {
    if (bytes > size) {
      std::free(data);
      size = (bytes + 63) / 64 * 64;
      data = std::aligned_alloc(64, size);
      if (data == nullptr) size = 0;
    }
    return data;
  }
};

thread_local Arena scratch_arena, src_arena, dst_arena, weight_arena;

dims to_dims(ffi::Span<const int64_t> s) { return dims(s.begin(), s.end()); }

// XLA's row-major shape -> oneDNN's logical (N, C, *S) order.
dims logical(ffi::Span<const int64_t> shape, bool channels_last) {
  dims d(shape.begin(), shape.end());
  if (channels_last) {
    const int64_t c = d.back();
    d.pop_back();
    d.insert(d.begin() + 1, c);
  }
  return d;
}

// oneDNN's data type of an XLA buffer: float32, bfloat16 or float16 (false for others).
bool data_type(ffi::DataType type, dt* out) {
  switch (type) {
    case ffi::DataType::F32: *out = dt::f32; return true;
    case ffi::DataType::BF16: *out = dt::bf16; return true;
    case ffi::DataType::F16: *out = dt::f16; return true;
    default: return false;
  }
}

ffi::Error run(Kind kind, ffi::AnyBuffer a, ffi::AnyBuffer b,
               ffi::Result<ffi::AnyBuffer> out, ffi::Span<const int64_t> strides,
               ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> pad_l,
               ffi::Span<const int64_t> pad_r, int64_t groups, bool channels_last) {
  // Operands by kind:  forward (x, w) -> y;  input grad (g, w) -> dx;  weight grad (g, x) -> dw.
  Problem p;
  p.kind = kind;
  p.channels_last = channels_last;
  p.groups = groups;
  p.strides = to_dims(strides);
  p.dilates = to_dims(dilation);
  for (auto& d : p.dilates) d -= 1;  // oneDNN counts the gaps: 0 is no dilation
  p.pad_l = to_dims(pad_l);
  p.pad_r = to_dims(pad_r);
  const size_t nd = p.strides.size();
  auto check_rank = [&](ffi::Span<const int64_t> s) { return s.size() == nd + 2; };
  const void* weight_in = nullptr;
  void* weight_out = nullptr;
  const void *src = nullptr, *dst_in = nullptr;
  void *src_out = nullptr, *dst_out = nullptr;
  ffi::Span<const int64_t> wshape;
  dt a_dt, b_dt, out_dt;
  if (!data_type(a.element_type(), &a_dt) || !data_type(b.element_type(), &b_dt) ||
      !data_type(out->element_type(), &out_dt))
    return ffi::Error::InvalidArgument(
        "convt_jax oneDNN: operands must be float32, bfloat16 or float16");
  switch (kind) {
    case kForward:
      if (!check_rank(a.dimensions()) || !check_rank(out->dimensions()))
        return ffi::Error::InvalidArgument("convt_jax oneDNN forward: operand rank");
      p.src = logical(a.dimensions(), channels_last);
      p.dst = logical(out->dimensions(), channels_last);
      wshape = b.dimensions();
      src = a.untyped_data();
      weight_in = b.untyped_data();
      dst_out = out->untyped_data();
      p.src_dt = a_dt, p.wei_dt = b_dt, p.dst_dt = out_dt;
      break;
    case kInputGrad:
      if (!check_rank(a.dimensions()) || !check_rank(out->dimensions()))
        return ffi::Error::InvalidArgument("convt_jax oneDNN input grad: operand rank");
      p.dst = logical(a.dimensions(), channels_last);
      p.src = logical(out->dimensions(), channels_last);
      wshape = b.dimensions();
      dst_in = a.untyped_data();
      weight_in = b.untyped_data();
      src_out = out->untyped_data();
      p.dst_dt = a_dt, p.wei_dt = b_dt, p.src_dt = out_dt;
      break;
    case kWeightGrad:
      if (!check_rank(a.dimensions()) || !check_rank(b.dimensions()))
        return ffi::Error::InvalidArgument("convt_jax oneDNN weight grad: operand rank");
      p.dst = logical(a.dimensions(), channels_last);
      p.src = logical(b.dimensions(), channels_last);
      wshape = out->dimensions();
      dst_in = a.untyped_data();
      src = b.untyped_data();
      weight_out = out->untyped_data();
      p.dst_dt = a_dt, p.src_dt = b_dt, p.wei_dt = out_dt;
      break;
  }
  if (wshape.size() != nd + 2)
    return ffi::Error::InvalidArgument("convt_jax oneDNN: weight rank");
  p.kernel = dims(wshape.begin() + 2, wshape.end());

  std::shared_ptr<Entry> e;
  try {
    e = primitive_for(p);
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("convt_jax oneDNN: primitive creation failed: ") +
                                err.what());
  }
  if (!e->ran.load(std::memory_order_relaxed)) e->ran.store(true, std::memory_order_relaxed);
  const auto& eng = cpu_engine();
  thread_local dnnl::stream stream(eng);
  void* scratch = scratch_arena.get(e->scratchpad_bytes);
  if (e->scratchpad_bytes && scratch == nullptr)
    return ffi::Error::Internal("convt_jax oneDNN: out of memory (scratchpad)");
  dnnl::memory scratchpad(e->scratchpad, eng, scratch);
  try {
    // Each operand where XLA holds it, and where the kernel reads or writes it: the same
    // memory, or a per-thread buffer with the reorder run before (input) or after (output).
    struct Bound {
      dnnl::memory user, kernel;
    };
    bool failed = false;
    auto bind = [&](const Operand& op, const void* ptr, Arena& arena, bool input) {
      dnnl::memory user(op.user, eng, const_cast<void*>(ptr));
      if (!op.reorder) return Bound{user, user};
      void* buf = arena.get(op.kernel.get_size());
      if (buf == nullptr) {
        failed = true;
        return Bound{user, user};
      }
      dnnl::memory kernel(op.kernel, eng, buf);
      if (input)
        op.convert.execute(stream, {{DNNL_ARG_FROM, user},
                                    {DNNL_ARG_TO, kernel},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad}});
      return Bound{user, kernel};
    };
    auto write_back = [&](const Operand& op, const Bound& b) {
      if (op.reorder)
        op.convert.execute(stream, {{DNNL_ARG_FROM, b.kernel},
                                    {DNNL_ARG_TO, b.user},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad}});
    };
    const bool fwd = kind == kForward, dx = kind == kInputGrad, dw = kind == kWeightGrad;
    Bound s = bind(e->src, dx ? src_out : src, src_arena, !dx);
    Bound d = bind(e->dst, fwd ? dst_out : dst_in, dst_arena, !fwd);
    Bound w = bind(e->weight, dw ? weight_out : weight_in, weight_arena, !dw);
    if (failed) return ffi::Error::Internal("convt_jax oneDNN: out of memory (reorder buffer)");
    switch (kind) {
      case kForward:  // convolution backward data
        e->primitive.execute(stream, {{DNNL_ARG_DIFF_DST, s.kernel},
                                      {DNNL_ARG_WEIGHTS, w.kernel},
                                      {DNNL_ARG_DIFF_SRC, d.kernel},
                                      {DNNL_ARG_SCRATCHPAD, scratchpad}});
        write_back(e->dst, d);
        break;
      case kInputGrad:  // convolution forward
        e->primitive.execute(stream, {{DNNL_ARG_SRC, d.kernel},
                                      {DNNL_ARG_WEIGHTS, w.kernel},
                                      {DNNL_ARG_DST, s.kernel},
                                      {DNNL_ARG_SCRATCHPAD, scratchpad}});
        write_back(e->src, s);
        break;
      case kWeightGrad:  // convolution backward weights
        e->primitive.execute(stream, {{DNNL_ARG_SRC, d.kernel},
                                      {DNNL_ARG_DIFF_DST, s.kernel},
                                      {DNNL_ARG_DIFF_WEIGHTS, w.kernel},
                                      {DNNL_ARG_SCRATCHPAD, scratchpad}});
        write_back(e->weight, w);
        break;
    }
    stream.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("convt_jax oneDNN: execution failed: ") +
                                err.what());
  }
  return ffi::Error::Success();
}

template <Kind kind>
ffi::Error run_kind(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                   ffi::Span<const int64_t> strides,
                   ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> pad_l,
                   ffi::Span<const int64_t> pad_r, int64_t groups, bool channels_last) {
  return run(kind, a, b, out, strides, dilation, pad_l, pad_r, groups, channels_last);
}

}  // namespace

#define CONVT_JAX_BIND                      \
  ffi::Ffi::Bind()                          \
      .Arg<ffi::AnyBuffer>()                \
      .Arg<ffi::AnyBuffer>()                \
      .Ret<ffi::AnyBuffer>()                \
      .Attr<ffi::Span<const int64_t>>("stride")   \
      .Attr<ffi::Span<const int64_t>>("dilation") \
      .Attr<ffi::Span<const int64_t>>("pad_l")    \
      .Attr<ffi::Span<const int64_t>>("pad_r")    \
      .Attr<int64_t>("groups")              \
      .Attr<bool>("channels_last")

XLA_FFI_DEFINE_HANDLER_SYMBOL(convt_jax_onednn_forward, run_kind<kForward>, CONVT_JAX_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(convt_jax_onednn_input_grad, run_kind<kInputGrad>, CONVT_JAX_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(convt_jax_onednn_weight_grad, run_kind<kWeightGrad>,
                              CONVT_JAX_BIND);

// The oneDNN version and the implementation oneDNN picked for the last-built problem of each
// kind, for convt_jax.backend_info().
extern "C" int convt_jax_onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}

extern "C" int convt_jax_onednn_cache_size() {
  std::lock_guard<std::mutex> lock(cache_mutex);
  return static_cast<int>(cache().size());
}

namespace {
void copy_out(const std::string& s, char* out, int64_t n) {
  if (n > 0) {
    std::strncpy(out, s.c_str(), static_cast<size_t>(n) - 1);
    out[n - 1] = '\0';
  }
}
}  // namespace

// Build (and cache) the primitive of one problem ahead of its first call, from the shapes
// in oneDNN's logical order (N, C, *S) and the settings (dilation counted as in PyTorch).
// Returns 0 and the implementation's name in `out`; 3 and the name where it is oneDNN's
// GEMM-based fallback (usable, but not a direct kernel); 2 and the name where it is
// oneDNN's reference kernel (the primitive is then not kept); or 1 and why oneDNN cannot
// compute it: the Python side asks this before choosing the oneDNN forms.
extern "C" int convt_jax_onednn_probe(int64_t kind, int64_t nd, int64_t groups,
                                      int64_t channels_last, const int64_t* src,
                                      const int64_t* dst, const int64_t* kernel,
                                      const int64_t* strides, const int64_t* dilation,
                                      const int64_t* pad_l, const int64_t* pad_r,
                                      const int64_t* dtypes, char* out, int64_t n) {
  Problem p;
  // dtypes: (x, y, weight), each 0 float32, 1 bfloat16, 2 float16.
  const dt codes[3] = {dt::f32, dt::bf16, dt::f16};
  for (int i = 0; i < 3; ++i)
    if (dtypes[i] < 0 || dtypes[i] > 2) {
      copy_out("unknown dtype code", out, n);
      return 1;
    }
  p.src_dt = codes[dtypes[0]];
  p.dst_dt = codes[dtypes[1]];
  p.wei_dt = codes[dtypes[2]];
  p.kind = static_cast<Kind>(kind);
  p.channels_last = channels_last != 0;
  p.groups = groups;
  p.src = dims(src, src + nd + 2);
  p.dst = dims(dst, dst + nd + 2);
  p.kernel = dims(kernel, kernel + nd);
  p.strides = dims(strides, strides + nd);
  p.dilates = dims(dilation, dilation + nd);
  for (auto& d : p.dilates) d -= 1;
  p.pad_l = dims(pad_l, pad_l + nd);
  p.pad_r = dims(pad_r, pad_r + nd);
  try {
    const std::string impl = primitive_for(p)->impl;
    copy_out(impl, out, n);
    // oneDNN's reference kernel: the Python side keeps such a problem on the XLA forms, so
    // its primitive is not kept.
    if (is_reference(impl)) {
      forget(p);
      return 2;
    }
    return is_gemm(impl) ? 3 : 0;
  } catch (const dnnl::error& err) {
    copy_out(err.what(), out, n);
    return 1;
  }
}

// A comma-separated list of the implementations that have run (e.g. "jit:avx512_core"),
// written into `out` (at most `n` bytes with the terminating zero); returns the full length.
extern "C" int convt_jax_onednn_impls(char* out, int n) {
  std::string all;
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    for (const auto& kv : cache()) {
      if (!kv.second->ran.load(std::memory_order_relaxed)) continue;
      if (all.find(kv.second->impl) == std::string::npos) {
        if (!all.empty()) all += ",";
        all += kv.second->impl;
      }
    }
  }
  copy_out(all, out, n);
  return static_cast<int>(all.size());
}

// Whether the CPU (as oneDNN sees it: ONEDNN_MAX_CPU_ISA lowers it) has native instructions
// for a half-precision dtype (1 bfloat16, 2 float16): AVX512-BF16 / AMX-BF16 or AVX-NE-CONVERT
// (AVX2-VNNI-2) for bfloat16, AVX512-FP16 / AMX-FP16 or AVX-NE-CONVERT for float16. oneDNN
// also runs half-precision kernels on older AVX-512 CPUs by emulating the conversions; those
// are not taken for native ones.
extern "C" int convt_jax_onednn_native_half(int64_t dtype) {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto has = [isa](dnnl_cpu_isa_t want) {
    return (isa & static_cast<unsigned>(want)) == static_cast<unsigned>(want);
  };
  if (has(dnnl_cpu_isa_avx2_vnni_2)) return 1;
  if (dtype == 1) return has(dnnl_cpu_isa_avx512_core_bf16) ? 1 : 0;
  if (dtype == 2) return has(dnnl_cpu_isa_avx512_core_fp16) ? 1 : 0;
  return 0;
}
