// The tensor cores' rate for the prefill passes' instruction pattern alone, a ceiling for those
// passes that the kernels bench measures in the same run as them: wgmma m64nNk16 (BF16, fp32
// accumulation) with A in registers and B in shared memory, in chains of four each waited for
// before the next, four warpgroups an SM; no fragment making, no loads.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace sympow::bench {

// Floats of the sink a launch writes (one a thread, the sum of its accumulators).
int64_t WgmmaChainsSinkFloats();
// FLOPs one launch does at `columns` (N: 72 or 136, Mma<d>::kWide at head_dim 64 and 128).
double WgmmaChainsFlops(int columns);
// One block an SM, each warpgroup a fixed number of chains over one B tile.
void LaunchWgmmaChains(int columns, float* sink, cudaStream_t stream);

}  // namespace sympow::bench
