/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's journal: a writer thread appends records in groups with one fdatasync each. */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "wp/crc.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define J_COMP            "journal"
#define J_SUFFIX          ".wpj"
#define J_NAME_DIGITS     20
#define J_HDR             8u         /* u32 len + u32 crc */
#define J_FIXED           12u        /* u32 agent_len + u64 seq */
#define J_MAX_LEN         (1u << 30) /* a record body over 1 GiB is corrupt on replay */
#define J_MAX_AGENT       1024u
#define J_RETRY_MS        1000
#define J_DEFAULT_SEGMENT (64ull << 20)
#define J_DEFAULT_QUEUE   (64ull << 20)
#define J_IOV_BATCH       512

/* One queued record, or (notice = 1) an error notification for a record still being retried. */
struct jrec {
    struct jrec *next;
    wp_journal_cb cb;
    void *arg;
    int status;
    int notice;
    int notified; /* writer: an error notice was already sent for this record */
    uint64_t segment;
    size_t size; /* bytes on disk (J_HDR + len); 0 for a notice */
    uint8_t data[];
};

struct jlist {
    struct jrec *head, *tail;
};

/* State shared with the writer thread, under mu (allocated apart so const readers can lock). */
struct jshared {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct jlist queue; /* appended, not yet taken by the writer */
    struct jlist done;  /* finished (or notices), waiting for the loop */
    int stop;
    int failed;
    uint64_t cur_seg;       /* segment the next write goes to */
    uint64_t writing_floor; /* first segment of the group being written; UINT64_MAX if idle */
    uint64_t records, bytes, syncs, errors, segments;
};

struct wp_journal {
    uv_loop_t *loop;
    uv_async_t async;
    pthread_t thread;
    int thread_started;
    int closing;
    char *dir;
    int dirfd;
    uint64_t segment_bytes;
    int fsync;
    uint64_t max_queue;
    uint64_t queued_bytes; /* loop: appended and not yet finally called back */
    uint64_t oldest;       /* loop: lowest segment number that may still exist */
    uint64_t cb_floor;     /* loop: segment of the record being called back, else UINT64_MAX */
    struct jshared *sh;
    /* writer thread only */
    int fd;
    uint64_t fd_size;
    struct iovec *iov;
    size_t iov_cap;
};

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* CRC over the length field and the body, so a damaged length is caught too. */
static uint32_t rec_crc(const uint8_t *rec, uint32_t len)
{
    uint32_t crc = wp_crc32c(0, rec, 4);
    return wp_crc32c(crc, rec + J_HDR, len);
}

static void jlist_push(struct jlist *l, struct jrec *r)
{
    r->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = r;
    } else {
        l->head = r;
    }
    l->tail = r;
}

static void jlist_concat(struct jlist *l, struct jlist *more)
{
    if (more->head == NULL) {
        return;
    }
    if (l->tail != NULL) {
        l->tail->next = more->head;
    } else {
        l->head = more->head;
    }
    l->tail = more->tail;
    more->head = NULL;
    more->tail = NULL;
}

static void seg_name(uint64_t seg, char *buf, size_t len)
{
    snprintf(buf, len, "%0*" PRIu64 J_SUFFIX, J_NAME_DIGITS, seg);
}

/* Parse a segment file name; returns 1 and sets *seg when name is one. */
static int seg_parse(const char *name, uint64_t *seg)
{
    uint64_t v = 0;

    for (int i = 0; i < J_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return 0;
        }
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
    }
    if (strcmp(name + J_NAME_DIGITS, J_SUFFIX) != 0) {
        return 0;
    }
    *seg = v;
    return 1;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* List the segment numbers in the directory, sorted; *out is freed by the caller. */
static int list_segments(int dirfd, uint64_t **out, size_t *n)
{
    int rc = 0;
    int fd = -1;
    DIR *d = NULL;
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e = NULL;

    *out = NULL;
    *n = 0;
    fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        rc = -errno;
        goto out;
    }
    fd = -1;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        uint64_t seg = 0;
        if (!seg_parse(e->d_name, &seg)) {
            continue;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            v = wp_xrealloc(v, cap * sizeof(*v));
        }
        v[cnt++] = seg;
    }
    if (errno != 0) {
        rc = -errno;
        goto out;
    }
    if (cnt > 0) {
        qsort(v, cnt, sizeof(*v), u64_cmp);
    }
    *out = v;
    *n = cnt;
    v = NULL;
out:
    free(v);
    if (d != NULL) {
        closedir(d);
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* ---- writer thread ---------------------------------------------------------------------- */

static int seg_create(struct wp_journal *j, uint64_t seg)
{
    char name[64];
    int fd = -1;

    seg_name(seg, name, sizeof(name));
    fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        return -errno;
    }
    /* reserve the blocks now (size unchanged), so appends do not allocate; best effort */
    if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)j->segment_bytes) < 0) {
        WP_DEBUG(J_COMP, "fallocate %s: %s", name, wp_strerror(-errno));
    }
    /* the new directory entry must be durable before records in it are acked */
    if (j->fsync && fsync(j->dirfd) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    j->fd = fd;
    j->fd_size = 0;
    pthread_mutex_lock(&j->sh->mu);
    j->sh->segments++;
    pthread_mutex_unlock(&j->sh->mu);
    return 0;
}

/* Finish with the current segment: the next write goes to a new one. */
static void seg_roll(struct wp_journal *j)
{
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
    pthread_mutex_lock(&j->sh->mu);
    j->sh->cur_seg++;
    pthread_mutex_unlock(&j->sh->mu);
}

static uint64_t cur_seg_locked_read(struct wp_journal *j)
{
    uint64_t s;

    pthread_mutex_lock(&j->sh->mu);
    s = j->sh->cur_seg;
    pthread_mutex_unlock(&j->sh->mu);
    return s;
}

/* Write iov[0..n) at the end of the current segment, handling short writes. */
static int write_all(struct wp_journal *j, struct iovec *iov, size_t n, uint64_t *off)
{
    size_t i = 0;

    while (i < n) {
        int cnt = (int)((n - i) > IOV_MAX ? IOV_MAX : (n - i));
        ssize_t w = pwritev(j->fd, iov + i, cnt, (off_t)*off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (w == 0) {
            return -EIO;
        }
        *off += (uint64_t)w;
        size_t left = (size_t)w;
        while (i < n && left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            i++;
        }
        if (left > 0) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
    }
    return 0;
}

/*
 * Write a run of records that all go to the current segment, then sync. On failure the
 * segment is cut back to where the run started; if that cannot be guaranteed (truncate or
 * sync failed), the segment is abandoned and the retry goes to a new one.
 */
static int write_run(struct wp_journal *j, struct jrec *first, size_t nrec)
{
    int rc = 0;
    uint64_t start = j->fd_size;
    uint64_t off = start;
    struct jrec *r = first;

    if (nrec > j->iov_cap) {
        j->iov_cap = nrec;
        j->iov = wp_xrealloc(j->iov, j->iov_cap * sizeof(*j->iov));
    }
    for (size_t i = 0; i < nrec; i++, r = r->next) {
        j->iov[i].iov_base = r->data;
        j->iov[i].iov_len = r->size;
    }
    rc = write_all(j, j->iov, nrec, &off);
    if (rc == 0 && j->fsync && fdatasync(j->fd) < 0) {
        rc = -errno;
        /* after a failed fdatasync the page cache cannot be trusted: cut (best effort) and
         * move on to a new segment */
        if (ftruncate(j->fd, (off_t)start) < 0) {
            WP_WARN(J_COMP, "cannot cut a failed write back dir=%s err=%s", j->dir,
                    wp_strerror(-errno));
        }
        seg_roll(j);
        return rc;
    }
    if (rc < 0) {
        if (ftruncate(j->fd, (off_t)start) < 0) {
            WP_ERROR(J_COMP, "cannot cut a failed write back, abandoning segment err=%s",
                     wp_strerror(-errno));
            seg_roll(j);
        }
        return rc;
    }
    j->fd_size = off;
    return 0;
}

/*
 * Write a group, rolling segments at segment_bytes. Returns 0, or the error with *ndone set to
 * the number of leading records that are durable.
 */
static int write_group(struct wp_journal *j, struct jrec *group, size_t *ndone, uint64_t *nsync)
{
    int rc = 0;
    struct jrec *r = group;

    *ndone = 0;
    *nsync = 0;
    for (struct jrec *c = group; c != NULL; c = c->next) {
        put_le32(c->data + 4, rec_crc(c->data, (uint32_t)(c->size - J_HDR)));
    }
    while (r != NULL) {
        struct jrec *first = r;
        size_t nrec = 0;
        uint64_t bytes = 0;

        if (j->fd >= 0 && j->fd_size > 0 && j->fd_size + r->size > j->segment_bytes) {
            seg_roll(j);
        }
        if (j->fd < 0) {
            rc = seg_create(j, cur_seg_locked_read(j));
            if (rc < 0) {
                return rc;
            }
        }
        uint64_t seg = cur_seg_locked_read(j);
        /* the records that fit in this segment (at least one) */
        while (r != NULL && (nrec == 0 || j->fd_size + bytes + r->size <= j->segment_bytes)) {
            r->segment = seg;
            bytes += r->size;
            nrec++;
            r = r->next;
        }
        rc = write_run(j, first, nrec);
        if (rc < 0) {
            return rc;
        }
        (*nsync)++;
        *ndone += nrec;
    }
    return 0;
}

static void notice_push(struct jlist *done, struct jrec *r, int status)
{
    struct jrec *n = wp_xcalloc(1, sizeof(*n));

    n->cb = r->cb;
    n->arg = r->arg;
    n->status = status;
    n->notice = 1;
    jlist_push(done, n);
}

static void *writer_main(void *arg)
{
    struct wp_journal *j = arg;
    struct jshared *sh = j->sh;
    struct jlist retry = {NULL, NULL};
    struct timespec due = {0, 0};

    pthread_mutex_lock(&sh->mu);
    for (;;) {
        while (sh->queue.head == NULL && retry.head == NULL && !sh->stop) {
            pthread_cond_wait(&sh->cond, &sh->mu);
        }
        if (retry.head != NULL) {
            /* failed before: wait out the retry interval unless closing */
            while (!sh->stop) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec > due.tv_sec ||
                    (now.tv_sec == due.tv_sec && now.tv_nsec >= due.tv_nsec)) {
                    break;
                }
                pthread_cond_timedwait(&sh->cond, &sh->mu, &due);
            }
        }
        /* the group: what failed last time, then everything queued meanwhile */
        struct jlist group = retry;
        retry.head = NULL;
        retry.tail = NULL;
        jlist_concat(&group, &sh->queue);
        if (group.head == NULL) {
            break; /* stop requested and nothing left */
        }
        int stopping = sh->stop;
        sh->writing_floor = sh->cur_seg;
        pthread_mutex_unlock(&sh->mu);

        size_t ndone = 0;
        uint64_t nsync = 0;
        int rc = write_group(j, group.head, &ndone, &nsync);

        pthread_mutex_lock(&sh->mu);
        sh->writing_floor = UINT64_MAX;
        sh->syncs += nsync;
        struct jrec *r = group.head;
        for (size_t i = 0; i < ndone; i++) {
            struct jrec *next = r->next;
            r->status = 0;
            sh->records++;
            sh->bytes += r->size;
            jlist_push(&sh->done, r);
            r = next;
        }
        if (rc == 0) {
            if (sh->failed) {
                WP_INFO(J_COMP, "writes succeed again dir=%s", j->dir);
            }
            sh->failed = 0;
        } else {
            sh->errors++;
            if (!sh->failed) {
                WP_ERROR(J_COMP, "write failed, retrying every %d ms dir=%s err=%s", J_RETRY_MS,
                         j->dir, wp_strerror(rc));
            }
            sh->failed = 1;
            while (r != NULL) {
                struct jrec *next = r->next;
                if (stopping) {
                    /* closing: give up, the owner never acked these */
                    r->status = WP_ECLOSED;
                    jlist_push(&sh->done, r);
                } else {
                    if (!r->notified) {
                        r->notified = 1;
                        notice_push(&sh->done, r, rc);
                    }
                    jlist_push(&retry, r);
                }
                r = next;
            }
            clock_gettime(CLOCK_MONOTONIC, &due);
            due.tv_sec += J_RETRY_MS / 1000;
            due.tv_nsec += (long)(J_RETRY_MS % 1000) * 1000000L;
            if (due.tv_nsec >= 1000000000L) {
                due.tv_sec++;
                due.tv_nsec -= 1000000000L;
            }
        }
        uv_async_send(&j->async);
    }
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

/* ---- loop thread ------------------------------------------------------------------------ */

static void run_done(struct wp_journal *j)
{
    struct jlist list;

    pthread_mutex_lock(&j->sh->mu);
    list = j->sh->done;
    j->sh->done.head = NULL;
    j->sh->done.tail = NULL;
    pthread_mutex_unlock(&j->sh->mu);
    for (struct jrec *r = list.head; r != NULL;) {
        struct jrec *next = r->next;
        if (r->notice) {
            r->cb(r->arg, r->status, 0);
        } else {
            j->cb_floor = r->segment;
            j->queued_bytes -= r->size;
            r->cb(r->arg, r->status, r->status == 0 ? r->segment : 0);
        }
        free(r);
        r = next;
    }
    j->cb_floor = UINT64_MAX;
    if (j->queued_bytes == 0 && !j->closing) {
        uv_unref((uv_handle_t *)&j->async); /* idle: do not keep the loop alive */
    }
}

static void on_async(uv_async_t *h)
{
    run_done(h->data);
}

static void journal_free(struct wp_journal *j)
{
    if (j == NULL) {
        return;
    }
    if (j->dirfd >= 0) {
        close(j->dirfd);
    }
    if (j->fd >= 0) {
        close(j->fd);
    }
    if (j->sh != NULL) {
        pthread_cond_destroy(&j->sh->cond);
        pthread_mutex_destroy(&j->sh->mu);
        free(j->sh);
    }
    free(j->iov);
    free(j->dir);
    free(j);
}

static void on_async_closed(uv_handle_t *h)
{
    journal_free(h->data);
}

int wp_journal_open(uv_loop_t *loop, const struct wp_journal_opts *opts, struct wp_journal **out)
{
    int rc = 0;
    struct wp_journal *j = NULL;
    uint64_t *segs = NULL;
    size_t nsegs = 0;
    pthread_condattr_t ca;

    *out = NULL;
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0') {
        return -EINVAL;
    }
    j = wp_xcalloc(1, sizeof(*j));
    j->loop = loop;
    j->dirfd = -1;
    j->fd = -1;
    j->dir = wp_xstrdup(opts->dir);
    j->segment_bytes = opts->segment_bytes ? opts->segment_bytes : J_DEFAULT_SEGMENT;
    j->fsync = opts->fsync;
    j->max_queue = J_DEFAULT_QUEUE;
    j->cb_floor = UINT64_MAX;
    j->sh = wp_xcalloc(1, sizeof(*j->sh));
    pthread_mutex_init(&j->sh->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->sh->cond, &ca);
    pthread_condattr_destroy(&ca);
    j->sh->writing_floor = UINT64_MAX;

    if (mkdir(j->dir, 0750) < 0 && errno != EEXIST) {
        rc = -errno;
        goto out;
    }
    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        rc = -errno;
        goto out;
    }
    /* one collector per journal directory */
    if (flock(j->dirfd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto out;
    }
    rc = list_segments(j->dirfd, &segs, &nsegs);
    if (rc < 0) {
        goto out;
    }
    /* appends always start a new segment: replay cuts old tails independently */
    j->sh->cur_seg = nsegs > 0 ? segs[nsegs - 1] + 1 : 1;
    j->oldest = nsegs > 0 ? segs[0] : j->sh->cur_seg;
    j->sh->segments = nsegs;

    rc = uv_async_init(loop, &j->async, on_async);
    if (rc < 0) {
        goto out;
    }
    j->async.data = j;
    uv_unref((uv_handle_t *)&j->async); /* referenced only while records are queued */
    rc = -pthread_create(&j->thread, NULL, writer_main, j);
    if (rc < 0) {
        uv_close((uv_handle_t *)&j->async, on_async_closed);
        j = NULL; /* freed by the close callback */
        goto out;
    }
    j->thread_started = 1;
    *out = j;
    j = NULL;
out:
    free(segs);
    journal_free(j);
    return rc;
}

/* Tests and tuning: change the back-pressure limit (default 64 MiB). Loop thread. */
void wp_journal_set_max_queue(struct wp_journal *j, uint64_t bytes)
{
    j->max_queue = bytes;
}

void wp_journal_close(struct wp_journal *j)
{
    if (j == NULL) {
        return;
    }
    j->closing = 1;
    pthread_mutex_lock(&j->sh->mu);
    j->sh->stop = 1;
    pthread_cond_signal(&j->sh->cond);
    pthread_mutex_unlock(&j->sh->mu);
    if (j->thread_started) {
        pthread_join(j->thread, NULL);
    }
    run_done(j);
    uv_close((uv_handle_t *)&j->async, on_async_closed);
}

int wp_journal_append(struct wp_journal *j, const char *agent, uint64_t seq, const void *payload,
                      size_t len, wp_journal_cb cb, void *arg)
{
    size_t alen = strlen(agent);
    uint64_t body = 0;
    struct jrec *r = NULL;
    int wake = 0;

    if (j->closing) {
        return WP_ECLOSED;
    }
    if (alen > J_MAX_AGENT) {
        return -EINVAL;
    }
    body = (uint64_t)J_FIXED + alen + len;
    if (body > J_MAX_LEN) {
        return WP_ETOOBIG;
    }
    if (j->queued_bytes > 0 && j->queued_bytes + J_HDR + body > j->max_queue) {
        return WP_ETOOBIG;
    }
    r = wp_xmalloc(sizeof(*r) + J_HDR + (size_t)body);
    r->next = NULL;
    r->cb = cb;
    r->arg = arg;
    r->status = 0;
    r->notice = 0;
    r->notified = 0;
    r->segment = 0;
    r->size = J_HDR + (size_t)body;
    put_le32(r->data, (uint32_t)body);
    put_le32(r->data + 4, 0); /* the writer fills the CRC in, off the loop thread */
    put_le32(r->data + J_HDR, (uint32_t)alen);
    memcpy(r->data + J_HDR + 4, agent, alen);
    put_le64(r->data + J_HDR + 4 + alen, seq);
    if (len > 0) {
        memcpy(r->data + J_HDR + J_FIXED + alen, payload, len);
    }
    j->queued_bytes += r->size;
    uv_ref((uv_handle_t *)&j->async);

    pthread_mutex_lock(&j->sh->mu);
    wake = j->sh->queue.head == NULL;
    jlist_push(&j->sh->queue, r);
    if (wake) {
        pthread_cond_signal(&j->sh->cond);
    }
    pthread_mutex_unlock(&j->sh->mu);
    return 0;
}

/* Replay one segment; cuts it at the first bad record. */
static int replay_segment(struct wp_journal *j, uint64_t seg, wp_journal_replay_fn fn, void *arg,
                          uint64_t *nrec)
{
    int rc = 0;
    int fd = -1;
    char name[64];
    struct stat st;
    uint8_t *map = NULL;
    size_t size = 0, off = 0;
    char *agent = NULL;
    const char *why = NULL;

    seg_name(seg, name, sizeof(name));
    fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? 0 : -errno;
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    size = (size_t)st.st_size;
    if (size == 0) {
        goto out;
    }
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        rc = -errno;
        goto out;
    }
    agent = wp_xmalloc(J_MAX_AGENT + 1);
    while (off < size) {
        const uint8_t *p = map + off;
        size_t left = size - off;
        if (left < J_HDR) {
            why = "torn record header";
            break;
        }
        uint32_t len = get_le32(p);
        if (len < J_FIXED || len > J_MAX_LEN) {
            why = "bad record length";
            break;
        }
        if ((uint64_t)len + J_HDR > left) {
            why = "torn record";
            break;
        }
        if (get_le32(p + 4) != rec_crc(p, len)) {
            why = "checksum mismatch";
            break;
        }
        uint32_t alen = get_le32(p + J_HDR);
        if (alen > J_MAX_AGENT || alen > len - J_FIXED) {
            why = "bad agent length";
            break;
        }
        memcpy(agent, p + J_HDR + 4, alen);
        agent[alen] = '\0';
        uint64_t seq = get_le64(p + J_HDR + 4 + alen);
        const uint8_t *payload = p + J_HDR + J_FIXED + alen;
        rc = fn(arg, seg, agent, seq, payload, len - J_FIXED - alen);
        if (rc < 0) {
            goto out;
        }
        (*nrec)++;
        off += J_HDR + len;
    }
    if (why != NULL) {
        WP_WARN(J_COMP,
                "cutting segment at a bad record file=%s/%s offset=%zu cut_bytes=%zu "
                "reason=\"%s\"",
                j->dir, name, off, size - off, why);
        if (ftruncate(fd, (off_t)off) < 0 || (j->fsync && fdatasync(fd) < 0)) {
            rc = -errno;
            goto out;
        }
    }
out:
    free(agent);
    if (map != NULL) {
        munmap(map, size);
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

int wp_journal_replay(struct wp_journal *j, wp_journal_replay_fn fn, void *arg)
{
    int rc = 0;
    uint64_t *segs = NULL;
    size_t nsegs = 0;
    uint64_t cur = cur_seg_locked_read(j);
    uint64_t nrec = 0;

    rc = list_segments(j->dirfd, &segs, &nsegs);
    if (rc < 0) {
        goto out;
    }
    for (size_t i = 0; i < nsegs; i++) {
        if (segs[i] >= cur) {
            break; /* written by this process */
        }
        rc = replay_segment(j, segs[i], fn, arg, &nrec);
        if (rc < 0) {
            goto out;
        }
    }
    if (nrec > 0) {
        WP_INFO(J_COMP, "replayed records=%" PRIu64 " segments=%zu dir=%s", nrec, nsegs, j->dir);
    }
out:
    free(segs);
    return rc;
}

int wp_journal_release(struct wp_journal *j, uint64_t below_segment)
{
    int rc = 0;
    uint64_t limit = below_segment;
    uint64_t removed = 0;
    char name[64];

    pthread_mutex_lock(&j->sh->mu);
    /* never a segment that is being written or whose records are not called back yet */
    if (j->sh->cur_seg < limit) {
        limit = j->sh->cur_seg;
    }
    if (j->sh->writing_floor < limit) {
        limit = j->sh->writing_floor;
    }
    if (j->sh->done.head != NULL) {
        for (struct jrec *r = j->sh->done.head; r != NULL; r = r->next) {
            if (!r->notice) {
                if (r->segment < limit) {
                    limit = r->segment;
                }
                break;
            }
        }
    }
    pthread_mutex_unlock(&j->sh->mu);
    if (j->cb_floor < limit) {
        limit = j->cb_floor;
    }
    for (; j->oldest < limit; j->oldest++) {
        seg_name(j->oldest, name, sizeof(name));
        if (unlinkat(j->dirfd, name, 0) < 0) {
            if (errno != ENOENT) {
                rc = -errno;
                break;
            }
        } else {
            removed++;
        }
    }
    pthread_mutex_lock(&j->sh->mu);
    j->sh->segments -= removed <= j->sh->segments ? removed : j->sh->segments;
    pthread_mutex_unlock(&j->sh->mu);
    return rc;
}

uint64_t wp_journal_segment(const struct wp_journal *j)
{
    uint64_t s;

    pthread_mutex_lock(&j->sh->mu);
    s = j->sh->cur_seg;
    pthread_mutex_unlock(&j->sh->mu);
    return s;
}

void wp_journal_stats(const struct wp_journal *j, struct wp_journal_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&j->sh->mu);
    out->records = j->sh->records;
    out->bytes = j->sh->bytes;
    out->syncs = j->sh->syncs;
    out->errors = j->sh->errors;
    out->segments = j->sh->segments;
    out->failed = j->sh->failed;
    pthread_mutex_unlock(&j->sh->mu);
    out->queued_bytes = j->queued_bytes;
}
