/* SPDX-License-Identifier: Apache-2.0 */
/* CRC-32C (Castagnoli) for on-disk records. */
#ifndef WP_COMMON_CRC_H
#define WP_COMMON_CRC_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0. */
uint32_t wp_crc32c(uint32_t crc, const void *data, size_t len);

#endif
