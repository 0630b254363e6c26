/*===- uk_s24.h - The 2:4 sparse weight layout ------------------------------===*
 *
 * Internal to the ukernels (pack_s24.c writes the layout, sparse24.c reads
 * it); the layout itself is documented in ukernels.h.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_TARGETS_CPU_UKERNELS_UK_S24_H_
#define KILN_TARGETS_CPU_UKERNELS_UK_S24_H_

#include "uk_vec.h"

/* Bytes of one group of 4 k in one panel: two rows of 16 kept values (f32
 * or int8), then 16 index bytes. */
UK_INLINE int64_t us24_group_bytes(int32_t bits) { return bits == 8 ? 48 : 144; }

/* Bytes of one panel: (bits 8) 16 f16 column scales, then the groups. */
UK_INLINE int64_t us24_panel_bytes(int64_t K, int32_t bits) {
  return (bits == 8 ? 32 : 0) + (K / 4) * us24_group_bytes(bits);
}

UK_INLINE int us24_valid(int64_t K, int64_t N, int32_t bits) {
  return K > 0 && N > 0 && K % 4 == 0 && (bits == 8 || bits == 32);
}

#endif /* KILN_TARGETS_CPU_UKERNELS_UK_S24_H_ */
