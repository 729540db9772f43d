/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's on-disk spool: CRC'd records in segment files, a state file, size and age bounds. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "wp/crc.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

/*
 * On-disk formats (all integers little-endian):
 *
 * record:  [u32 len][u32 crc][u64 seq][i64 ts_ms][u32 nvals][payload]
 *          len is the payload length; crc is CRC-32C of the 20 header bytes after it
 *          (seq, ts_ms, nvals) followed by the payload.
 * segment: "<first seq, 20 digits>.seg"; its records have consecutive seqs from that first
 *          seq. A seq jump (sync_remote) or a cut always starts a new segment.
 * state:   "state" (52 bytes): "WPSS", u32 version 1, u64 acked, u64 next, u64 dropped
 *          records, u64 dropped values, u64 dropped bytes, u32 CRC-32C of the 48 bytes before.
 *          Written to "state.tmp", fdatasynced, renamed, directory fsynced.
 *
 * The seq invariant: a seq is never handed out twice. Every append puts its seq on disk in
 * a segment; the state file is written (durably) before any segment is deleted or cut, and
 * whenever next seq jumps. So next = max(state.next, highest seq found on disk + 1) is
 * always past every seq handed out. When the state file is missing or corrupt, the segments
 * alone give that bound; a corrupt state file with no segment at all is refused
 * (WP_ECORRUPT) rather than restarting at 1. (A missing state file with no segments is a
 * new or lost spool: next starts at 1 and WELCOME's sync_remote moves it past the
 * collector's mark.)
 *
 * Memory: per segment a 40-byte index entry, two read positions (read cursor, ack
 * boundary) and one payload buffer the size of the largest recent record. Nothing per
 * record. segment_bytes is raised to max_bytes / 4096 so the index stays below ~160 KiB.
 *
 * Acks are kept in memory and written to the state file when a segment is deleted, when
 * next seq jumps, and on close: losing a later ack in a crash only makes the sender resend
 * batches the collector then drops as duplicates.
 *
 * Age bound: a segment is too old when its newest record's ts is more than max_age_ms
 * older than the ts of the record being appended (no wall clock involved, so a clock step
 * between restarts cannot drop the spool by itself, and tests need no fake time).
 */

#define HDR_LEN        28u
#define STATE_LEN      52u
#define STATE_VERSION  1u
#define SCAN_BUF       (64u * 1024u)
#define BUF_KEEP       (64u * 1024u)
#define BUF_SHRINK     (1024u * 1024u)
#define DEF_MAX_BYTES  (256ull * 1024 * 1024)
#define DEF_MAX_AGE_MS (7ll * 24 * 3600 * 1000)
#define DEF_SEG_MAX    (16ull * 1024 * 1024)
#define DEF_SEG_MIN    (64ull * 1024)
#define MAX_SEGS       4096u
#define STATE_NAME     "state"
#define STATE_TMP      "state.tmp"
#define COMP           "spool"

struct seg {
    uint64_t first;  /* seq in the file name */
    uint64_t last;   /* last record's seq; first - 1 when empty */
    uint64_t bytes;  /* file size (good records only) */
    uint64_t values; /* sum of nvals */
    int64_t newest_ts;
};

/* A position on a record inside one segment, with the fd it reads through. */
struct spos {
    int fd;
    uint64_t seg; /* first seq of the segment; 0 = none */
    uint64_t off; /* offset of the record numbered seq */
    uint64_t seq;
    uint64_t vals; /* nvals of the records before off in this segment */
    int64_t ts;    /* ts of the record at off (kept for the ack boundary) */
};

struct rhdr {
    uint32_t len;
    uint32_t crc;
    uint64_t seq;
    int64_t ts;
    uint32_t nvals;
};

struct wp_spool {
    int dfd;
    int wfd; /* segs[nsegs - 1] open for append, or -1 (the next append starts a segment) */
    uint64_t max_bytes;
    uint64_t seg_bytes;
    int64_t max_age;
    int fsync;
    struct seg *segs;
    size_t nsegs;
    size_t cap;
    uint64_t acked;
    uint64_t next;
    uint64_t drop_rec;
    uint64_t drop_vals;
    uint64_t drop_bytes;
    uint64_t total_bytes;
    uint64_t total_records;
    struct spos rd; /* read cursor */
    struct spos ab; /* ack boundary: the first stored record with seq > acked */
    uint8_t *buf;
    size_t buf_cap;
    int ok; /* opened: close() writes the state file */
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void hdr_encode(uint8_t out[HDR_LEN], const struct rhdr *h)
{
    put32(out, h->len);
    put32(out + 4, h->crc);
    put64(out + 8, h->seq);
    put64(out + 16, (uint64_t)h->ts);
    put32(out + 24, h->nvals);
}

static void hdr_decode(const uint8_t in[HDR_LEN], struct rhdr *h)
{
    h->len = get32(in);
    h->crc = get32(in + 4);
    h->seq = get64(in + 8);
    h->ts = (int64_t)get64(in + 16);
    h->nvals = get32(in + 24);
}

static void seg_name(char out[32], uint64_t first)
{
    snprintf(out, 32, "%020" PRIu64 ".seg", first);
}

static uint64_t seg_count(const struct seg *g)
{
    return g->last + 1 - g->first;
}

static int is_too_old(const struct wp_spool *s, int64_t newest, int64_t ts)
{
    if (s->max_age <= 0 || ts < INT64_MIN + s->max_age) {
        return 0;
    }
    return newest < ts - s->max_age;
}

static int pread_full(int fd, void *dst, size_t n, uint64_t off)
{
    uint8_t *p = dst;
    size_t got = 0;

    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return WP_ECORRUPT; /* the file is shorter than the index says */
        }
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *src, size_t n)
{
    const uint8_t *p = src;

    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(struct wp_spool *s)
{
    if (fsync(s->dfd) < 0) {
        return -errno;
    }
    return 0;
}

static int state_write(struct wp_spool *s)
{
    uint8_t b[STATE_LEN];
    int rc = 0;
    int fd = -1;

    memcpy(b, "WPSS", 4);
    put32(b + 4, STATE_VERSION);
    put64(b + 8, s->acked);
    put64(b + 16, s->next);
    put64(b + 24, s->drop_rec);
    put64(b + 32, s->drop_vals);
    put64(b + 40, s->drop_bytes);
    put32(b + 48, wp_crc32c(0, b, 48));
    fd = openat(s->dfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = write_full(fd, b, sizeof(b));
    if (rc < 0) {
        goto out;
    }
    if (fdatasync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    if (renameat(s->dfd, STATE_TMP, s->dfd, STATE_NAME) < 0) {
        rc = -errno;
        goto out;
    }
    rc = fsync_dir(s);
out:
    if (fd >= 0) {
        close(fd);
    }
    if (rc < 0) {
        WP_ERROR(COMP, "cannot write the state file: %s", wp_strerror(rc));
    }
    return rc;
}

/* Read the state file into s. Returns 0, -ENOENT, WP_ECORRUPT or -errno. */
static int state_read(struct wp_spool *s)
{
    uint8_t b[STATE_LEN + 1];
    int rc = 0;
    size_t got = 0;
    int fd = openat(s->dfd, STATE_NAME, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return -errno;
    }
    while (got < sizeof(b)) {
        ssize_t r = read(fd, b + got, sizeof(b) - got);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            goto out;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    if (got != STATE_LEN || memcmp(b, "WPSS", 4) != 0 || get32(b + 4) != STATE_VERSION ||
        get32(b + 48) != wp_crc32c(0, b, 48) || get64(b + 16) == 0) {
        rc = WP_ECORRUPT;
        goto out;
    }
    s->acked = get64(b + 8);
    s->next = get64(b + 16);
    s->drop_rec = get64(b + 24);
    s->drop_vals = get64(b + 32);
    s->drop_bytes = get64(b + 40);
out:
    close(fd);
    return rc;
}

static void pos_reset(struct spos *p)
{
    if (p->fd >= 0) {
        close(p->fd);
    }
    memset(p, 0, sizeof(*p));
    p->fd = -1;
}

/* Index of the first segment whose last seq is >= seq, or nsegs. */
static size_t seg_find(const struct wp_spool *s, uint64_t seq)
{
    size_t lo = 0;
    size_t hi = s->nsegs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid].last >= seq) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

static int is_current(const struct wp_spool *s, size_t i)
{
    return s->wfd >= 0 && i + 1 == s->nsegs;
}

static void close_writer(struct wp_spool *s)
{
    if (s->wfd >= 0) {
        close(s->wfd);
        s->wfd = -1;
    }
}

/* Remove segments [i, i + k) from disk and the index. Callers write the state file first. */
static int segs_delete(struct wp_spool *s, size_t i, size_t k)
{
    char name[32];
    int rc = 0;

    if (k == 0) {
        return 0;
    }
    for (size_t j = i; j < i + k; j++) {
        struct seg *g = &s->segs[j];
        if (is_current(s, j)) {
            close_writer(s);
        }
        if (s->rd.seg == g->first) {
            pos_reset(&s->rd);
        }
        if (s->ab.seg == g->first) {
            pos_reset(&s->ab);
        }
        seg_name(name, g->first);
        if (unlinkat(s->dfd, name, 0) < 0 && errno != ENOENT) {
            /* Harmless to leave: its seqs are below the next seq in the state file. */
            WP_WARN(COMP, "cannot delete segment %s: %s", name, strerror(errno));
        }
        s->total_bytes -= g->bytes;
        s->total_records -= seg_count(g);
    }
    memmove(&s->segs[i], &s->segs[i + k], (s->nsegs - i - k) * sizeof(s->segs[0]));
    s->nsegs -= k;
    rc = fsync_dir(s);
    return rc;
}

/* Open p on segment i, at its first record unless p already sits on it at or before seq. */
static int pos_start(struct wp_spool *s, struct spos *p, size_t i, uint64_t seq)
{
    char name[32];
    const struct seg *g = &s->segs[i];

    if (p->seg != g->first) {
        pos_reset(p);
    }
    if (p->fd < 0) {
        /* p->seg may already name this segment with a known position (set by append) */
        seg_name(name, g->first);
        p->fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC);
        if (p->fd < 0) {
            return -errno;
        }
        p->seg = g->first;
    }
    if (p->seq < g->first || p->seq > seq) {
        p->off = 0;
        p->seq = g->first;
        p->vals = 0;
    }
    return 0;
}

static int seg_cut(struct wp_spool *s, size_t i, uint64_t off, uint64_t seq, uint64_t vals);

/*
 * Move p to the record numbered seq in segment i (first <= seq <= last) and read its
 * header into *h. Returns 0, or WP_ECORRUPT after cutting the segment at a bad header
 * (the caller looks again), or -errno.
 */
static int pos_seek(struct wp_spool *s, struct spos *p, size_t i, uint64_t seq, struct rhdr *h)
{
    uint8_t raw[HDR_LEN];
    int rc = pos_start(s, p, i, seq);

    if (rc < 0) {
        return rc;
    }
    for (;;) {
        const struct seg *g = &s->segs[i];
        rc = pread_full(p->fd, raw, HDR_LEN, p->off);
        if (rc == 0) {
            hdr_decode(raw, h);
            if (h->seq != p->seq || p->off + HDR_LEN + h->len > g->bytes) {
                rc = WP_ECORRUPT;
            }
        }
        if (rc == WP_ECORRUPT) {
            int cut = seg_cut(s, i, p->off, p->seq, p->vals);
            return cut < 0 ? cut : WP_ECORRUPT;
        }
        if (rc < 0) {
            return rc;
        }
        p->ts = h->ts;
        if (p->seq >= seq) {
            return 0;
        }
        p->off += HDR_LEN + h->len;
        p->vals += h->nvals;
        p->seq++;
    }
}

/* Recompute the ack boundary after acked or the segments changed. */
static int ab_refresh(struct wp_spool *s)
{
    struct rhdr h;
    uint64_t guard = s->total_records + 2;

    while (guard-- > 0) {
        size_t i = seg_find(s, s->acked + 1);
        if (i == s->nsegs) {
            pos_reset(&s->ab);
            return 0;
        }
        uint64_t target = s->acked + 1 > s->segs[i].first ? s->acked + 1 : s->segs[i].first;
        int rc = pos_seek(s, &s->ab, i, target, &h);
        if (rc != WP_ECORRUPT) {
            return rc;
        }
    }
    return WP_ECORRUPT;
}

/* Add to the dropped counters what losing segment g from offset off (record seq, vals
 * values before it) costs in unacked data. */
static void count_loss(struct wp_spool *s, const struct seg *g, uint64_t off, uint64_t seq,
                       uint64_t vals)
{
    if (g->last <= s->acked || g->last < seq) {
        return;
    }
    if (seq > s->acked) {
        s->drop_rec += g->last - seq + 1;
        s->drop_vals += g->values - vals;
        s->drop_bytes += g->bytes - off;
    } else if (s->ab.seg == g->first && s->ab.seq == s->acked + 1 && s->ab.off >= off) {
        s->drop_rec += g->last - s->acked;
        s->drop_vals += g->values - s->ab.vals;
        s->drop_bytes += g->bytes - s->ab.off;
    } else {
        /* The ack boundary is not known in this segment: count the whole cut part. */
        s->drop_rec += g->last - s->acked;
        s->drop_vals += g->values - vals;
        s->drop_bytes += g->bytes - off;
    }
}

/*
 * A bad record was found at off (seq, vals values before it) in segment i after open:
 * persist next seq and the counters, then cut the segment there. Returns WP_ECORRUPT on
 * success (the caller looks again) or -errno.
 */
static int seg_cut(struct wp_spool *s, size_t i, uint64_t off, uint64_t seq, uint64_t vals)
{
    char name[32];
    struct seg *g = &s->segs[i];
    int rc = 0;
    int fd = -1;

    seg_name(name, g->first);
    WP_WARN(COMP,
            "segment %s: bad record at offset %" PRIu64 " seq %" PRIu64 ", dropping seq %" PRIu64
            "..%" PRIu64,
            name, off, seq, seq, g->last);
    count_loss(s, g, off, seq, vals);
    rc = state_write(s);
    if (rc < 0) {
        return rc;
    }
    if (is_current(s, i)) {
        fd = s->wfd;
        s->wfd = -1; /* its next seq no longer follows its last record: start a new one */
    } else {
        fd = openat(s->dfd, name, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0 || ftruncate(fd, (off_t)off) < 0 || (s->fsync && fdatasync(fd) < 0)) {
        WP_WARN(COMP, "segment %s: cannot truncate: %s", name, strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
    if (s->rd.seg == g->first) {
        pos_reset(&s->rd);
    }
    if (s->ab.seg == g->first) {
        pos_reset(&s->ab);
    }
    s->total_bytes -= g->bytes - off;
    s->total_records -= g->last + 1 - seq;
    g->bytes = off;
    g->values = vals;
    g->last = seq - 1;
    if (g->last < g->first) {
        rc = segs_delete(s, i, 1);
        if (rc < 0) {
            return rc;
        }
    }
    return WP_ECORRUPT;
}

/* Ack up to seq; delete the (non-current) segments it covers; write state if force. */
static int do_ack(struct wp_spool *s, uint64_t seq, int force)
{
    size_t k = 0;
    int rc = 0;

    if (seq > s->next - 1) {
        seq = s->next - 1;
    }
    if (seq > s->acked) {
        s->acked = seq;
    }
    while (k < s->nsegs && !is_current(s, k) && s->segs[k].last <= s->acked) {
        k++;
    }
    if (k > 0 || force) {
        rc = state_write(s);
        if (rc < 0) {
            return rc;
        }
    }
    rc = segs_delete(s, 0, k);
    if (rc < 0) {
        return rc;
    }
    return ab_refresh(s);
}

/* Before appending a record of rec bytes at ts: roll the current segment if it cannot take
 * it, then drop oldest segments for the bounds and reap the fully acked ones. */
static int apply_bounds(struct wp_spool *s, uint64_t rec, int64_t ts)
{
    uint64_t bytes = s->total_bytes;
    size_t k = 0;
    int rc = 0;

    if (s->wfd >= 0) {
        const struct seg *cur = &s->segs[s->nsegs - 1];
        if (cur->last + 1 != s->next || cur->bytes + rec > s->seg_bytes ||
            is_too_old(s, cur->newest_ts, ts)) {
            close_writer(s);
        }
    }
    while (k < s->nsegs && !is_current(s, k)) {
        const struct seg *g = &s->segs[k];
        if (bytes + rec <= s->max_bytes && !is_too_old(s, g->newest_ts, ts) && g->last > s->acked) {
            break;
        }
        bytes -= g->bytes;
        k++;
    }
    if (k == 0) {
        return 0;
    }
    uint64_t r0 = s->drop_rec;
    for (size_t j = 0; j < k; j++) {
        count_loss(s, &s->segs[j], 0, s->segs[j].first, 0);
    }
    if (s->drop_rec != r0) {
        WP_WARN(COMP, "bounds: dropping %" PRIu64 " unacked batches (seq %" PRIu64 "..%" PRIu64 ")",
                s->drop_rec - r0, s->segs[0].first, s->segs[k - 1].last);
    }
    rc = state_write(s);
    if (rc < 0) {
        return rc;
    }
    rc = segs_delete(s, 0, k);
    if (rc < 0) {
        return rc;
    }
    return ab_refresh(s);
}

static int start_segment(struct wp_spool *s)
{
    char name[32];

    seg_name(name, s->next);
    s->wfd = openat(s->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (s->wfd < 0) {
        return -errno;
    }
    if (s->fsync && fsync_dir(s) < 0) {
        int rc = -errno;
        close_writer(s);
        unlinkat(s->dfd, name, 0);
        return rc;
    }
    if (s->nsegs == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->segs = wp_xrealloc(s->segs, s->cap * sizeof(s->segs[0]));
    }
    struct seg *g = &s->segs[s->nsegs++];
    memset(g, 0, sizeof(*g));
    g->first = s->next;
    g->last = s->next - 1;
    g->newest_ts = INT64_MIN;
    return 0;
}

int wp_spool_append(struct wp_spool *s, const void *payload, size_t len, int64_t ts_ms,
                    uint32_t nvals, uint64_t *seq)
{
    uint8_t raw[HDR_LEN];
    struct rhdr h;
    struct iovec iov[2];
    int rc = 0;
    int created = 0;
    ssize_t w = 0;
    size_t done = 0;
    uint64_t rec = HDR_LEN + (uint64_t)len;

    if (seq != NULL) {
        *seq = 0;
    }
    if (len > UINT32_MAX || rec > s->max_bytes) {
        return WP_ETOOBIG;
    }
    rc = apply_bounds(s, rec, ts_ms);
    if (rc < 0) {
        return rc;
    }
    if (s->wfd < 0) {
        rc = start_segment(s);
        if (rc < 0) {
            return rc;
        }
        created = 1;
    }
    struct seg *g = &s->segs[s->nsegs - 1];
    h.len = (uint32_t)len;
    h.seq = s->next;
    h.ts = ts_ms;
    h.nvals = nvals;
    h.crc = 0;
    hdr_encode(raw, &h);
    h.crc = wp_crc32c(wp_crc32c(0, raw + 8, HDR_LEN - 8), payload, len);
    put32(raw + 4, h.crc);
    /* One writev; only a short write (disk full, file size limit) loops to learn errno. */
    while (done < rec) {
        iov[0].iov_base = raw + (done < HDR_LEN ? done : HDR_LEN);
        iov[0].iov_len = done < HDR_LEN ? HDR_LEN - done : 0;
        iov[1].iov_base = (void *)(uintptr_t)payload;
        iov[1].iov_len = len;
        if (done > HDR_LEN) {
            iov[1].iov_base = (uint8_t *)iov[1].iov_base + (done - HDR_LEN);
            iov[1].iov_len = len - (done - HDR_LEN);
        }
        w = writev(s->wfd, iov, 2);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            goto fail;
        }
        done += (size_t)w;
    }
    if (s->fsync && fdatasync(s->wfd) < 0) {
        rc = -errno;
        goto fail;
    }
    g->last = h.seq;
    g->bytes += rec;
    g->values += nvals;
    if (ts_ms > g->newest_ts) {
        g->newest_ts = ts_ms;
    }
    s->total_bytes += rec;
    s->total_records++;
    s->next++;
    if (s->ab.seg == 0 && h.seq > s->acked) {
        pos_reset(&s->ab);
        s->ab.seg = g->first;
        s->ab.off = g->bytes - rec;
        s->ab.seq = h.seq;
        s->ab.vals = g->values - nvals;
        s->ab.ts = ts_ms;
    }
    if (seq != NULL) {
        *seq = h.seq;
    }
    return 0;
fail:
    /* Leave no partial record behind: the seq is not used and the file stays clean. */
    if (ftruncate(s->wfd, (off_t)g->bytes) < 0) {
        WP_ERROR(COMP, "cannot truncate a failed append: %s", strerror(errno));
        close_writer(s); /* never append after a torn record; the next open cuts it */
    }
    if (created) {
        char name[32];
        seg_name(name, g->first);
        close_writer(s);
        unlinkat(s->dfd, name, 0);
        s->nsegs--;
        fsync_dir(s);
    }
    return rc;
}

int wp_spool_ack(struct wp_spool *s, uint64_t seq)
{
    return do_ack(s, seq, 0);
}

int wp_spool_sync_remote(struct wp_spool *s, uint64_t acked)
{
    int force = 0;

    if (acked > INT64_MAX) {
        return WP_EPROTO; /* no agent ever gets near 2^63 batches: a broken peer */
    }
    if (acked >= s->next) {
        WP_WARN(COMP,
                "collector has seq %" PRIu64 " but the spool is at %" PRIu64
                ": spool lost or restored, moving past it",
                acked, s->next);
        s->next = acked + 1;
        close_writer(s); /* a segment holds consecutive seqs: the next append starts one */
        force = 1;
    }
    return do_ack(s, acked, force);
}

int wp_spool_read(struct wp_spool *s, uint64_t from, uint64_t *seq, int64_t *ts_ms,
                  const uint8_t **payload, size_t *len)
{
    static const uint8_t empty[1];
    uint8_t raw[HDR_LEN];
    struct rhdr h;
    uint64_t guard = s->total_records + 2;
    int rc = WP_ENOTFOUND;

    while (guard-- > 0) {
        size_t i = seg_find(s, from);
        if (i == s->nsegs) {
            return WP_ENOTFOUND;
        }
        uint64_t target = from > s->segs[i].first ? from : s->segs[i].first;
        rc = pos_seek(s, &s->rd, i, target, &h);
        if (rc == 0) {
            if (h.len > s->buf_cap || (s->buf_cap > BUF_SHRINK && h.len <= BUF_KEEP)) {
                s->buf_cap = h.len > BUF_KEEP ? h.len : BUF_KEEP;
                s->buf = wp_xrealloc(s->buf, s->buf_cap);
            }
            rc = pread_full(s->rd.fd, s->buf, h.len, s->rd.off + HDR_LEN);
            if (rc == 0) {
                hdr_encode(raw, &h);
                if (wp_crc32c(wp_crc32c(0, raw + 8, HDR_LEN - 8), s->buf, h.len) != h.crc) {
                    rc = WP_ECORRUPT;
                }
            }
            if (rc == WP_ECORRUPT) {
                rc = seg_cut(s, i, s->rd.off, s->rd.seq, s->rd.vals);
            }
        }
        if (rc == WP_ECORRUPT) {
            /* The segment was cut: the boundary may have moved; look again. */
            rc = ab_refresh(s);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        if (rc < 0) {
            return rc;
        }
        *seq = h.seq;
        *ts_ms = h.ts;
        *payload = h.len > 0 ? s->buf : empty;
        *len = h.len;
        s->rd.off += HDR_LEN + h.len;
        s->rd.vals += h.nvals;
        s->rd.seq++;
        return 0;
    }
    return rc;
}

void wp_spool_stats(const struct wp_spool *s, struct wp_spool_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->acked_seq = s->acked;
    out->next_seq = s->next;
    out->first_seq = s->nsegs > 0 ? s->segs[0].first : s->next;
    out->bytes = s->total_bytes;
    out->records = s->total_records;
    for (size_t i = 0; i < s->nsegs; i++) {
        const struct seg *g = &s->segs[i];
        uint64_t low = g->first > s->acked ? g->first : s->acked + 1;
        if (g->last >= low) {
            out->pending += g->last - low + 1;
        }
    }
    out->dropped_records = s->drop_rec;
    out->dropped_values = s->drop_vals;
    out->dropped_bytes = s->drop_bytes;
    out->oldest_ts_ms = s->ab.seg != 0 ? s->ab.ts : 0;
}

/* ---- open: scan, recover, cut ---- */

/* What scanning one segment file found. */
struct scan {
    uint64_t size;  /* file size */
    uint64_t chain; /* records that look complete after the cut point (lost seqs) */
    int cut;        /* bad data from segs[i].bytes on */
};

/* Sequential reader with a CRC over what it consumes. */
struct rdr {
    int fd;
    uint8_t *buf;
    size_t pos;
    size_t len;
};

/* Consume n bytes into dst (when not NULL), folding them into *crc. Returns 0,
 * WP_ETRUNC at end of file, or -errno. */
static int rdr_take(struct rdr *r, uint8_t *dst, uint64_t n, uint32_t *crc)
{
    while (n > 0) {
        if (r->pos == r->len) {
            ssize_t got = read(r->fd, r->buf, SCAN_BUF);
            if (got < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return -errno;
            }
            if (got == 0) {
                return WP_ETRUNC;
            }
            r->pos = 0;
            r->len = (size_t)got;
        }
        size_t c = r->len - r->pos;
        if (c > n) {
            c = (size_t)n;
        }
        if (dst != NULL) {
            memcpy(dst, r->buf + r->pos, c);
            dst += c;
        }
        if (crc != NULL) {
            *crc = wp_crc32c(*crc, r->buf + r->pos, c);
        }
        r->pos += c;
        n -= c;
    }
    return 0;
}

/*
 * Walk the length fields of what follows a bad record at off, without trusting CRCs, to
 * bound how many seqs the lost part may have used (seq0 onwards). Adds the loss of the
 * records with seq > acked to the counters when s is not NULL. Returns the count.
 */
static uint64_t chain_walk(struct wp_spool *s, int fd, uint64_t off, uint64_t size, uint64_t seq0)
{
    uint8_t raw[HDR_LEN];
    struct rhdr h;
    uint64_t n = 0;

    while (off + HDR_LEN <= size && pread_full(fd, raw, HDR_LEN, off) == 0) {
        hdr_decode(raw, &h);
        if (off + HDR_LEN + h.len > size) {
            break;
        }
        if (s != NULL && seq0 + n > s->acked) {
            s->drop_rec++;
            s->drop_vals += h.nvals;
            s->drop_bytes += HDR_LEN + h.len;
        }
        n++;
        off += HDR_LEN + h.len;
    }
    return n;
}

/* Scan segment g (named g->first; records must stay below limit): fill g and sc. */
static int scan_segment(struct wp_spool *s, struct seg *g, uint64_t limit, struct rdr *r,
                        struct scan *sc)
{
    char name[32];
    uint8_t raw[HDR_LEN];
    struct rhdr h;
    struct stat st;
    int rc = 0;
    int dup = 0;

    seg_name(name, g->first);
    r->fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC);
    r->pos = r->len = 0;
    if (r->fd < 0) {
        return -errno;
    }
    if (fstat(r->fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    sc->size = (uint64_t)st.st_size;
    g->last = g->first - 1;
    g->newest_ts = INT64_MIN;
    while (g->bytes < sc->size) {
        uint32_t crc = 0;
        rc = rdr_take(r, raw, HDR_LEN, NULL);
        if (rc == 0) {
            hdr_decode(raw, &h);
            /* a record the next segment starts with is a duplicate, not a loss */
            dup = h.seq == g->last + 1 && h.seq >= limit;
            if (h.seq != g->last + 1 || dup || g->bytes + HDR_LEN + h.len > sc->size) {
                rc = WP_ECORRUPT;
            }
        }
        if (rc == 0) {
            crc = wp_crc32c(0, raw + 8, HDR_LEN - 8);
            rc = rdr_take(r, NULL, h.len, &crc);
        }
        if (rc == 0 && crc != h.crc) {
            rc = WP_ECORRUPT;
        }
        if (rc == WP_ECORRUPT || rc == WP_ETRUNC) {
            sc->cut = 1;
            rc = 0;
            if (!dup) {
                sc->chain = chain_walk(NULL, r->fd, g->bytes, sc->size, g->last + 1);
            }
            WP_WARN(COMP,
                    "segment %s: bad or torn record at offset %" PRIu64 " (file %" PRIu64
                    " bytes), cutting there",
                    name, g->bytes, sc->size);
            break;
        }
        if (rc < 0) {
            goto out;
        }
        g->last = h.seq;
        g->bytes += HDR_LEN + h.len;
        g->values += h.nvals;
        if (h.ts > g->newest_ts) {
            g->newest_ts = h.ts;
        }
    }
out:
    close(r->fd);
    r->fd = -1;
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Parse "<20 digits>.seg"; returns the seq or 0. */
static uint64_t parse_name(const char *n)
{
    uint64_t v = 0;

    if (strlen(n) != 24 || strcmp(n + 20, ".seg") != 0) {
        return 0;
    }
    for (int i = 0; i < 20; i++) {
        if (n[i] < '0' || n[i] > '9') {
            return 0;
        }
        uint64_t d = (uint64_t)(n[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
    }
    return v <= INT64_MAX ? v : 0; /* seqs never get near 2^63; such a name is not ours */
}

/* List the segment files in first-seq order into s->segs. */
static int list_segments(struct wp_spool *s)
{
    int rc = 0;
    DIR *d = NULL;
    struct dirent *e = NULL;
    uint64_t *firsts = NULL;
    size_t n = 0;
    size_t cap = 0;
    int fd = openat(s->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        return -errno;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        rc = -errno;
        close(fd);
        goto out;
    }
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (e == NULL) {
            break;
        }
        uint64_t first = parse_name(e->d_name);
        if (first == 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            firsts = wp_xrealloc(firsts, cap * sizeof(firsts[0]));
        }
        firsts[n++] = first;
    }
    if (errno != 0) {
        rc = -errno;
        goto out;
    }
    if (n > 0) {
        qsort(firsts, n, sizeof(firsts[0]), cmp_u64);
    }
    s->cap = n > 16 ? n : 16;
    s->segs = wp_xcalloc(s->cap, sizeof(s->segs[0]));
    for (size_t i = 0; i < n; i++) {
        s->segs[i].first = firsts[i];
        s->segs[i].last = firsts[i] - 1;
    }
    s->nsegs = n;
out:
    if (d != NULL) {
        closedir(d);
    }
    free(firsts);
    return rc;
}

/* Scan all segments, settle next/acked/counters, write the state, then cut and clean. */
static int recover(struct wp_spool *s)
{
    int rc = 0;
    int st = 0;
    struct scan *sc = NULL;
    struct rdr r = {.fd = -1};
    uint64_t next = 1;

    st = state_read(s);
    if (st < 0 && st != -ENOENT && st != WP_ECORRUPT) {
        return st;
    }
    rc = list_segments(s);
    if (rc < 0) {
        return rc;
    }
    if (st == WP_ECORRUPT && s->nsegs == 0) {
        WP_ERROR(COMP, "state file is corrupt and there is no segment to recover the next seq "
                       "from; refusing to reuse seqs (remove the state file to start over)");
        return WP_ECORRUPT;
    }
    if (st < 0) {
        s->acked = 0;
        s->next = 1;
        s->drop_rec = s->drop_vals = s->drop_bytes = 0;
        if (st == WP_ECORRUPT) {
            WP_WARN(COMP, "state file is corrupt; recovering seqs from %zu segments", s->nsegs);
        }
    }
    sc = wp_xcalloc(s->nsegs > 0 ? s->nsegs : 1, sizeof(*sc));
    r.buf = wp_xmalloc(SCAN_BUF);
    for (size_t i = 0; i < s->nsegs; i++) {
        struct seg *g = &s->segs[i];
        uint64_t limit = i + 1 < s->nsegs ? s->segs[i + 1].first : UINT64_MAX;
        rc = scan_segment(s, g, limit, &r, &sc[i]);
        if (rc < 0) {
            goto out;
        }
        if (g->last + 1 + sc[i].chain > next) {
            next = g->last + 1 + sc[i].chain;
        }
    }
    if (st == 0 && s->next > next) {
        next = s->next;
    }
    s->next = next;
    if (st == 0) {
        if (s->acked > next - 1) {
            s->acked = next - 1;
        }
    } else {
        /* Nothing says what was acked: everything stored is pending. */
        s->acked = next - 1;
        for (size_t i = 0; i < s->nsegs; i++) {
            if (s->segs[i].last >= s->segs[i].first) {
                s->acked = s->segs[i].first - 1;
                break;
            }
        }
    }
    for (size_t i = 0; i < s->nsegs; i++) {
        if (sc[i].chain > 0) {
            int fd = -1;
            char name[32];
            seg_name(name, s->segs[i].first);
            fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                chain_walk(s, fd, s->segs[i].bytes, sc[i].size, s->segs[i].last + 1);
                close(fd);
            }
        }
    }
    /* Next seq and the counters are durable before anything on disk is cut or deleted. */
    rc = state_write(s);
    if (rc < 0) {
        goto out;
    }
    for (size_t i = 0; i < s->nsegs; i++) {
        struct seg *g = &s->segs[i];
        s->total_bytes += g->bytes;
        s->total_records += seg_count(g);
        if (sc[i].cut && g->last >= g->first) {
            char name[32];
            seg_name(name, g->first);
            int fd = openat(s->dfd, name, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || ftruncate(fd, (off_t)g->bytes) < 0 || fdatasync(fd) < 0) {
                rc = -errno;
                WP_ERROR(COMP, "segment %s: cannot truncate: %s", name, strerror(errno));
            }
            if (fd >= 0) {
                close(fd);
            }
            if (rc < 0) {
                goto out;
            }
        }
    }
    for (size_t i = s->nsegs; i-- > 0;) {
        if (s->segs[i].last < s->segs[i].first) {
            rc = segs_delete(s, i, 1);
            if (rc < 0) {
                goto out;
            }
        }
    }
out:
    free(r.buf);
    free(sc);
    return rc;
}

int wp_spool_open(const char *dir, const struct wp_spool_limits *lim, struct wp_spool **out)
{
    int rc = 0;
    struct wp_spool *s = NULL;

    *out = NULL;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        WP_ERROR(COMP, "cannot create %s: %s", dir, wp_strerror(rc));
        return rc;
    }
    s = wp_xcalloc(1, sizeof(*s));
    s->wfd = -1;
    s->rd.fd = -1;
    s->ab.fd = -1;
    s->max_bytes = lim != NULL && lim->max_bytes > 0 ? lim->max_bytes : DEF_MAX_BYTES;
    s->max_age = lim != NULL ? lim->max_age_ms : DEF_MAX_AGE_MS;
    s->fsync = lim != NULL ? lim->fsync : 1;
    if (lim != NULL && lim->segment_bytes > 0) {
        s->seg_bytes = lim->segment_bytes;
    } else {
        s->seg_bytes = s->max_bytes / 8 < DEF_SEG_MAX ? s->max_bytes / 8 : DEF_SEG_MAX;
        if (s->seg_bytes < DEF_SEG_MIN) {
            s->seg_bytes = DEF_SEG_MIN;
        }
    }
    if (s->seg_bytes < s->max_bytes / MAX_SEGS) {
        s->seg_bytes = s->max_bytes / MAX_SEGS;
    }
    if (s->seg_bytes > s->max_bytes) {
        s->seg_bytes = s->max_bytes;
    }
    s->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dfd < 0) {
        rc = -errno;
        WP_ERROR(COMP, "cannot open %s: %s", dir, wp_strerror(rc));
        goto out;
    }
    if (flock(s->dfd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        WP_ERROR(COMP, "%s is in use by another process: %s", dir, wp_strerror(rc));
        goto out;
    }
    unlinkat(s->dfd, STATE_TMP, 0);
    rc = recover(s);
    if (rc < 0) {
        WP_ERROR(COMP, "cannot open the spool in %s: %s", dir, wp_strerror(rc));
        goto out;
    }
    if (s->nsegs > 0) {
        /* Keep appending to the last segment when its seqs would still be consecutive. */
        const struct seg *g = &s->segs[s->nsegs - 1];
        if (g->last + 1 == s->next && g->bytes < s->seg_bytes) {
            char name[32];
            seg_name(name, g->first);
            s->wfd = openat(s->dfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
            if (s->wfd < 0) {
                rc = -errno;
                goto out;
            }
        }
    }
    rc = ab_refresh(s);
    if (rc < 0) {
        goto out;
    }
    s->ok = 1;
    *out = s;
    s = NULL;
out:
    wp_spool_close(s);
    return rc;
}

void wp_spool_close(struct wp_spool *s)
{
    if (s == NULL) {
        return;
    }
    if (s->ok) {
        state_write(s); /* logs its own failure; a stale ack only causes resends */
    }
    close_writer(s);
    pos_reset(&s->rd);
    pos_reset(&s->ab);
    if (s->dfd >= 0) {
        close(s->dfd);
    }
    free(s->segs);
    free(s->buf);
    free(s);
}
