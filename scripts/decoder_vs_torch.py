"""Decoder kernels vs transformers (float32) and float64: see scripts/decoder-vs-torch.sh."""
import ctypes, sys, numpy as np, torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm, LlamaRotaryEmbedding, apply_rotary_pos_emb, repeat_kv
from transformers import LlamaConfig
torch.set_num_threads(1)
lib = ctypes.CDLL(sys.argv[1])
F = ctypes.POINTER(ctypes.c_float); I32 = ctypes.POINTER(ctypes.c_int32); L = ctypes.c_int64
def fp(a): return a.ctypes.data_as(F)
rng = np.random.default_rng(0)
def rel(a, b): return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
def ulps(a, b):  # max difference in float ulps
    a = a.astype(np.float32); b = b.astype(np.float32)
    return int(np.max(np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))))

# RMSNorm
n, d = 256, 576
x = (rng.standard_normal((n, d)) * 3).astype(np.float32); g = rng.standard_normal(d).astype(np.float32)
m = LlamaRMSNorm(d, eps=1e-5); m.weight.data = torch.from_numpy(g.copy())
ref = m(torch.from_numpy(x)).detach().numpy()
y = np.zeros_like(x)
lib.lt_rmsnorm_forward(L(n), L(d), ctypes.c_float(1e-5), fp(x), L(d), fp(g), fp(y), L(d), None)
x64 = x.astype(np.float64); r64 = g * x64 / np.sqrt((x64**2).mean(1, keepdims=True) + 1e-5)
print(f"RMSNorm  ours vs torch: max {ulps(y, ref)} ulp, rel {rel(y, ref):.2e};  vs float64: ours {rel(y, r64):.2e}, torch {rel(ref, r64):.2e}")

# SiLU / SwiGLU
gt = (rng.standard_normal((n, 1536)) * 6).astype(np.float32); ut = rng.standard_normal((n, 1536)).astype(np.float32)
ref = (torch.nn.functional.silu(torch.from_numpy(gt)) * torch.from_numpy(ut)).numpy()
y = np.zeros_like(gt)
lib.lt_swiglu_forward(L(n), L(1536), fp(gt), L(1536), fp(ut), L(1536), fp(y), L(1536))
s64 = gt.astype(np.float64) / (1 + np.exp(-gt.astype(np.float64)))
silu_ours = np.zeros_like(gt); ones = np.ones_like(ut)
lib.lt_swiglu_forward(L(n), L(1536), fp(gt), L(1536), fp(ones), L(1536), fp(silu_ours), L(1536))
silu_torch = torch.nn.functional.silu(torch.from_numpy(gt)).numpy()
print(f"SiLU     ours vs float64 rounded: max {ulps(silu_ours, s64.astype(np.float32))} ulp ({np.mean(silu_ours != s64.astype(np.float32))*100:.4f}% differ); torch vs float64 rounded: max {ulps(silu_torch, s64.astype(np.float32))} ulp ({np.mean(silu_torch != s64.astype(np.float32))*100:.2f}% differ)")
print(f"SwiGLU   ours vs torch: max {ulps(y, ref)} ulp, rel {rel(y, ref):.2e}")

# RoPE (HF LlamaRotaryEmbedding, rope_theta 100000, head_dim 64)
H, dh = 9, 64; T = 300
cfg = LlamaConfig(hidden_size=576, num_attention_heads=9, num_key_value_heads=3, head_dim=64, rope_theta=100000.0, max_position_embeddings=8192)
rot = LlamaRotaryEmbedding(cfg)
pos = np.array(list(range(0, 150)) + list(range(7900, 8050)), dtype=np.int32)
q = rng.standard_normal((1, H, T, dh)).astype(np.float32)
cos, sin = rot(torch.from_numpy(q), torch.from_numpy(pos.astype(np.int64))[None])
qr, _ = apply_rotary_pos_emb(torch.from_numpy(q), torch.from_numpy(q), cos, sin)
qr = qr.numpy()[0].transpose(1, 0, 2).reshape(T, H * dh)
inv = rot.inv_freq.numpy().astype(np.float32)
X = np.ascontiguousarray(q[0].transpose(1, 0, 2).reshape(T, H * dh))
lib.lt_rope_forward(L(T), L(H), L(dh), L(dh), pos.ctypes.data_as(I32), fp(inv), fp(X), L(H * dh))
theta = (pos.astype(np.float32)[:, None] * inv[None, :]).astype(np.float64)          # float32 angles
c64, s64r = np.cos(np.concatenate([theta, theta], 1)), np.sin(np.concatenate([theta, theta], 1))
q64 = q[0].astype(np.float64)                                                            # H × T × dh
rot64 = np.concatenate([-q64[..., dh // 2:], q64[..., :dh // 2]], -1)
r64 = (q64 * c64[None] + rot64 * s64r[None]).transpose(1, 0, 2).reshape(T, H * dh)
print(f"RoPE     ours vs torch: rel {rel(X, qr):.2e}, bitwise equal {np.mean(X == qr)*100:.2f}%;  vs float64: ours {rel(X, r64):.2e}, torch {rel(qr, r64):.2e}")

# Causal GQA attention (eager: softmax(QK^T*s + mask) V in float32) with a cache: past=40, T=60
B, T, past, Hkv = 2, 60, 40, 3; S = past + T
Q = rng.standard_normal((B, H, T, dh)).astype(np.float32); K = rng.standard_normal((B, Hkv, S, dh)).astype(np.float32); V = rng.standard_normal((B, Hkv, S, dh)).astype(np.float32)
Kt, Vt = repeat_kv(torch.from_numpy(K), 3), repeat_kv(torch.from_numpy(V), 3)
scale = dh ** -0.5
w = torch.matmul(torch.from_numpy(Q), Kt.transpose(2, 3)) * scale
mask = torch.full((T, S), float("-inf")); mask = torch.triu(mask, diagonal=past + 1)
p = torch.softmax(w + mask, dim=-1, dtype=torch.float32)
ref = torch.matmul(p, Vt).numpy().transpose(0, 2, 1, 3).reshape(B * T, H * dh)
Qc = np.ascontiguousarray(Q.transpose(0, 2, 1, 3).reshape(B * T, H * dh))
Kc = np.ascontiguousarray(K.transpose(0, 2, 1, 3).reshape(B * S, Hkv * dh)); Vc = np.ascontiguousarray(V.transpose(0, 2, 1, 3).reshape(B * S, Hkv * dh))
C = np.zeros((B * T, H * dh), np.float32); ws = np.zeros(B * H * T * S, np.float32)
lib.lt_causal_attention_forward(L(B), L(T), L(past), L(H), L(Hkv), L(dh), ctypes.c_float(scale), fp(Qc), L(H*dh), fp(Kc), L(Hkv*dh), fp(Vc), L(Hkv*dh), L(S), None, fp(C), L(H*dh), fp(ws))
Q64, K64, V64 = Q.astype(np.float64), np.repeat(K, 3, 1).astype(np.float64), np.repeat(V, 3, 1).astype(np.float64)
w64 = Q64 @ K64.transpose(0, 1, 3, 2) * float(np.float32(scale)) + mask.numpy().astype(np.float64)
p64 = np.exp(w64 - w64.max(-1, keepdims=True)); p64 /= p64.sum(-1, keepdims=True)
r64 = (p64 @ V64).transpose(0, 2, 1, 3).reshape(B * T, H * dh)
print(f"Attention ours vs torch eager: rel {rel(C, ref):.2e};  vs float64: ours {rel(C, r64):.2e}, torch {rel(ref, r64):.2e}")

# Backward passes vs torch autograd in float64 (the float32 kernels' gradients against exact ones).
def t64(a, grad=True): return torch.tensor(a, dtype=torch.float64, requires_grad=grad)
# RMSNorm
dy = rng.standard_normal((n, d)).astype(np.float32)
xt, gt64 = t64(x), t64(g)
(gt64 * xt / torch.sqrt((xt ** 2).mean(1, keepdim=True) + 1e-5) * t64(dy, False)).sum().backward()
rs = np.zeros(n, np.float32); dx = np.zeros_like(x); dg = np.zeros(d, np.float32)
lib.lt_rmsnorm_forward(L(n), L(d), ctypes.c_float(1e-5), fp(x), L(d), fp(g), fp(np.zeros_like(x)), L(d), fp(rs))
lib.lt_rmsnorm_backward(L(n), L(d), fp(dy), L(d), fp(x), L(d), fp(g), fp(rs), fp(dx), L(d), fp(dg), ctypes.c_int(0))
print(f"RMSNorm  backward vs float64 autograd: dX {rel(dx, xt.grad.numpy()):.2e}, dgamma {rel(dg, gt64.grad.numpy()):.2e}")
# SwiGLU
dy = rng.standard_normal((n, 1536)).astype(np.float32)
g6, u6 = t64(gt), t64(ut)
(torch.nn.functional.silu(g6) * u6 * t64(dy, False)).sum().backward()
dg = np.zeros_like(gt); du = np.zeros_like(ut)
lib.lt_swiglu_backward(L(n), L(1536), fp(gt), L(1536), fp(ut), L(1536), fp(dy), L(1536), fp(dg), L(1536), fp(du), L(1536))
print(f"SwiGLU   backward vs float64 autograd: dG {rel(dg, g6.grad.numpy()):.2e}, dU {rel(du, u6.grad.numpy()):.2e}")
# Attention (past = 0), GQA 9/3
B, T = 2, 70
Q = rng.standard_normal((B, H, T, dh)).astype(np.float32); K = rng.standard_normal((B, Hkv, T, dh)).astype(np.float32)
V = rng.standard_normal((B, Hkv, T, dh)).astype(np.float32); dC = rng.standard_normal((B * T, H * dh)).astype(np.float32)
q6, k6, v6 = t64(Q), t64(K), t64(V)
w = q6 @ k6.repeat_interleave(3, 1).transpose(2, 3) * float(np.float32(scale))
w = w + torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), diagonal=1)
c6 = (torch.softmax(w, -1) @ v6.repeat_interleave(3, 1)).transpose(1, 2).reshape(B * T, H * dh)
(c6 * t64(dC, False)).sum().backward()
Qc = np.ascontiguousarray(Q.transpose(0, 2, 1, 3).reshape(B * T, H * dh))
Kc = np.ascontiguousarray(K.transpose(0, 2, 1, 3).reshape(B * T, Hkv * dh)); Vc = np.ascontiguousarray(V.transpose(0, 2, 1, 3).reshape(B * T, Hkv * dh))
C = np.zeros((B * T, H * dh), np.float32); P = np.zeros(B * H * T * T, np.float32); ws = np.zeros(B * H * T * T, np.float32)
lib.lt_causal_attention_forward(L(B), L(T), L(0), L(H), L(Hkv), L(dh), ctypes.c_float(scale), fp(Qc), L(H*dh), fp(Kc), L(Hkv*dh), fp(Vc), L(Hkv*dh), L(T), fp(P), fp(C), L(H*dh), fp(ws))
dQ = np.zeros_like(Qc); dK = np.zeros_like(Kc); dV = np.zeros_like(Vc)
lib.lt_causal_attention_backward(L(B), L(T), L(H), L(Hkv), L(dh), ctypes.c_float(scale), fp(Qc), L(H*dh), fp(Kc), L(Hkv*dh), fp(Vc), L(Hkv*dh), fp(P), fp(dC), L(H*dh), fp(dQ), L(H*dh), fp(dK), L(Hkv*dh), fp(dV), L(Hkv*dh), fp(ws))
def bthd(t, h): return t.grad.numpy().transpose(0, 2, 1, 3).reshape(B * T, h * dh)
print(f"Attention backward vs float64 autograd: dQ {rel(dQ, bthd(q6, H)):.2e}, dK {rel(dK, bthd(k6, Hkv)):.2e}, dV {rel(dV, bthd(v6, Hkv)):.2e}")
