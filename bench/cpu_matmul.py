"""fp32 matmul throughput of this CPU at the shapes of SmolLM2-135M's packed scoring (2 threads): what the DELRec
CPU preset's scoring cost is compared against in bench/RESULTS.md.

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/cpu_matmul.py
"""

import time

import torch

torch.set_num_threads(2)
for m, k, n in [(2800, 576, 1536), (2800, 1536, 576), (1600, 576, 49152)]:  # MLP up/down, LM head
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(2):
        a @ b
    start, repeats = time.perf_counter(), 5
    for _ in range(repeats):
        a @ b
    seconds = (time.perf_counter() - start) / repeats
    print(f"{m}x{k} @ {k}x{n}: {2 * m * k * n / seconds / 1e9:.1f} GFLOP/s ({torch.backends.cpu.get_cpu_capability()})")
