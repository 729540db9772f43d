/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host probe: CPU, memory, load, processes, file systems, disks and network of the host,
 * read from procfs, sysfs and statvfs() through configurable roots (proc_root, sys_root,
 * root_fs) so tests run on fixture trees.
 *
 * Series groups (one RRD file per instance, every field a gauge):
 *   cpu/total, cpu/<n>  user nice system iowait irq softirq steal idle: percent of the CPU
 *                       time that passed between two samples (deltas of the /proc/stat
 *                       "cpu" lines, sum of the eight = 100). The kernel already counts
 *                       guest time inside user (and guest_nice inside nice), so guest columns
 *                       are not added again. A single column that goes backwards (iowait does
 *                       on some kernels) counts as 0; a total that goes backwards gives NaN.
 *   mem                 total used available free buffers cached swap_total swap_used, bytes
 *                       from /proc/meminfo: used = MemTotal - MemAvailable, cached = Cached +
 *                       SReclaimable (free(1)'s buff/cache without buffers), swap_used =
 *                       SwapTotal - SwapFree. Kernels without MemAvailable (< 3.14) get
 *                       available = MemFree + Buffers + cached.
 *   load                load1 load5 load15 from /proc/loadavg.
 *   system              uptime (s, /proc/uptime), procs (numeric directories in proc_root:
 *                       processes, not threads; the readdir scan costs ~0.3 us per process,
 *                       so it runs every procs_interval and the count is reused in between),
 *                       procs_running and procs_blocked (/proc/stat), threads (the total of
 *                       /proc/loadavg's running/total: scheduling entities, threads included).
 *   df/<mount point>    bytes_total bytes_used bytes_avail used_pct inodes_total inodes_used
 *                       inodes_used_pct, from statvfs() like df(1): used = blocks - bfree,
 *                       used_pct = used / (used + bavail) * 100 (the root reserve is not
 *                       available), inodes_used_pct = iused / (iused + favail) * 100, NaN when
 *                       a file system has no inode count (btrfs, vfat).
 *   disk/<device>       rd_ops wr_ops (ops/s), rd_bytes wr_bytes (bytes/s, diskstats sectors
 *                       are 512 bytes), busy_pct (io_ticks delta / interval, at most 100),
 *                       await_ms (read+write ticks / completed ops, 0 without I/O).
 *   net/<interface>     rx_bytes tx_bytes rx_packets tx_packets rx_errors tx_errors rx_drops
 *                       tx_drops, per second, from /proc/net/dev.
 *
 * Rates need two samples. The interval is the difference of the sink's ts_ms (the aligned
 * sample time), never the wall clock. The first sample of an instance, and any counter
 * that went backwards (reset, 32-bit wrap), give NaN for one round instead of a huge value.
 *
 * File systems: the mount table is PID 1's (<proc_root>/1/mounts, like node_exporter, so a
 * containerised or systemd-sandboxed agent reports the host's file systems), or the agent's
 * own <proc_root>/mounts when that is unreadable. A mount point is resolved under root_fs
 * for statvfs(). Skipped: types in fs_exclude_types (pseudo file systems) or not in
 * fs_include_types when that is set, mount points matching a mount_exclude glob, and all
 * but the last (visible) mount on one mount point. Network file systems (nfs*, cifs, smb*,
 * ceph, glusterfs, 9p, fuse.*, ...) are skipped unless remote_fs is true, even when listed
 * in fs_include_types, because statvfs() on a dead server blocks the probe. A statvfs()
 * failure on one mount skips that mount only.
 *
 * Disks: whole disks are the names under <sys_root>/block (partitions are not), read when a
 * new device name shows up in /proc/diskstats.
 *
 * Cost: one pread() per file per sample on file descriptors kept open (reopened after a
 * failed read), parsing in place in one reusable buffer, no allocation in the steady state.
 * The mount table is re-parsed only when its text changes; only statvfs() runs per mount.
 * Measured on a 2-core VM (-O2, 11 rows / 77 values, ~110 processes): 40-50 us of CPU per
 * sample, 75-80 us when the process count runs every sample; most of it is the kernel
 * formatting the procfs text.
 *
 * A file that cannot be read is logged once (and its recovery once) and skips its group;
 * sample() fails only when nothing could be read. The probe runs on the agent's loop
 * (not WP_PROBE_BLOCKING): with remote_fs true a hung server would stall the loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/mem.h"

#define HOST_BUF_INIT (16u << 10)
#define HOST_BUF_MAX  (16u << 20)
#define HOST_NCTR     8  /* raw counters kept per instance */
#define HOST_NAME_LEN 64 /* cpu line, disk or interface name, NUL included */

/* A procfs file kept open between samples and re-read with pread(fd, .., 0). */
struct host_file {
    char *path;
    int fd;      /* -1 when closed */
    int failing; /* the last read failed and was logged; cleared (and logged) on success */
    int bad;     /* its text did not parse and that was logged; cleared when it parses */
};

/* One line of a counter file (a cpu line, a disk, an interface) and its raw counters. */
struct host_inst {
    char name[HOST_NAME_LEN];
    uint64_t c[HOST_NCTR];
    int64_t ts_ms; /* sink time of the sample the counters come from */
    int wanted;    /* emitted (not excluded, a whole disk, ...); decided once per name */
};

/*
 * The lines of one counter file in file order: cur is being filled from this sample, prev
 * holds the previous one. Instances missing from a sample vanish with the swap, so no state
 * leaks. Both arrays only grow.
 */
struct host_table {
    struct host_inst *cur, *prev;
    size_t ncur, nprev;
    size_t capcur, capprev;
};

/* A file system kept for the df group (the mount table's filtered, de-duplicated view). */
struct host_mount {
    char *mnt;   /* mount point, the df instance */
    char *path;  /* mnt under root_fs, given to statvfs() */
    int failing; /* statvfs() failed and was logged */
};

/* A parsed mount table line, pointing into the read buffer. */
struct host_mline {
    const char *mnt;
    const char *type;
};

enum {
    HOST_F_STAT = 0,
    HOST_F_MEMINFO,
    HOST_F_LOADAVG,
    HOST_F_UPTIME,
    HOST_F_DISKSTATS,
    HOST_F_NETDEV,
    HOST_F_MOUNTS,
    HOST_F_COUNT
};

struct host_ctx {
    /* options, decoded by the registry with host_opts (it owns and frees them) */
    char *proc_root;
    char *sys_root;
    char *root_fs;
    struct wp_strlist fs_exclude_types;
    struct wp_strlist fs_include_types;
    struct wp_strlist mount_exclude;
    struct wp_strlist disk_exclude;
    struct wp_strlist net_exclude;
    int per_cpu;
    int remote_fs;
    int64_t procs_interval_ms;

    /* state, owned by the probe (init allocates, destroy frees) */
    struct wp_strlist fs_excl, fs_incl, mnt_excl, disk_excl, net_excl; /* options split at ',' */
    struct host_file f[HOST_F_COUNT];
    char *buf; /* read buffer for every file, NUL-terminated after a read */
    size_t cap;
    struct host_table cpu, disk, net;
    char **blk; /* names under <sys_root>/block: the whole disks */
    size_t nblk;
    int blk_scanned; /* rescanned during this sample */
    char *block_dir;
    char *mnt_raw; /* the mount table as last parsed; unchanged text reuses mounts[] */
    size_t mnt_raw_len, mnt_raw_cap;
    int mnt_valid;
    struct host_mount *mounts;
    size_t nmounts;
    struct host_mline *mlines; /* scratch for re-parsing the mount table */
    size_t mlines_cap;
    DIR *procdir; /* proc_root, rewound for each process count */
    double procs;
    int64_t procs_ts_ms;
    int procs_valid;
    int procs_failing; /* opendir(proc_root) failed and was logged */
};

/*
 * List options take YAML lists, and every item may itself hold several comma-separated
 * names ("loop*,ram*"): that is how the built-in defaults below are written, since an
 * option default is one scalar.
 */
static const struct wp_opt host_opts[] = {
    {.name = "proc_root",
     .type = WP_OPT_STR,
     .def = "/proc",
     .help = "procfs root (a fixture tree in tests, the host's /proc seen from a container)",
     .offset = offsetof(struct host_ctx, proc_root)},
    {.name = "sys_root",
     .type = WP_OPT_STR,
     .def = "/sys",
     .help = "sysfs root; whole disks are the names under <sys_root>/block",
     .offset = offsetof(struct host_ctx, sys_root)},
    {.name = "root_fs",
     .type = WP_OPT_STR,
     .def = "/",
     .help = "directory mount points are resolved under for statvfs (node_exporter's "
             "--path.rootfs)",
     .offset = offsetof(struct host_ctx, root_fs)},
    {.name = "fs_exclude_types",
     .type = WP_OPT_STRLIST,
     .def = "autofs,binfmt_misc,bpf,cgroup,cgroup2,configfs,debugfs,devpts,devtmpfs,efivarfs,"
            "fuse.gvfsd-fuse,fuse.portal,fusectl,hugetlbfs,iso9660,mqueue,nfsd,nsfs,overlay,"
            "proc,pstore,ramfs,rpc_pipefs,securityfs,selinuxfs,squashfs,sysfs,tmpfs,tracefs",
     .help = "file system types without df series (pseudo file systems)",
     .offset = offsetof(struct host_ctx, fs_exclude_types)},
    {.name = "fs_include_types",
     .type = WP_OPT_STRLIST,
     .help = "when set, only these file system types get df series (fs_exclude_types unused)",
     .offset = offsetof(struct host_ctx, fs_include_types)},
    {.name = "mount_exclude",
     .type = WP_OPT_STRLIST,
     .def = "/dev,/dev/*,/proc,/proc/*,/sys,/sys/*,/run/credentials/*,/var/lib/docker/*,"
            "/var/lib/containers/storage/*,/var/lib/kubelet/pods/*",
     .help = "mount point globs (fnmatch, * also matches /) without df series",
     .offset = offsetof(struct host_ctx, mount_exclude)},
    {.name = "remote_fs",
     .type = WP_OPT_BOOL,
     .def = "false",
     .help = "statvfs network file systems too (nfs, cifs, fuse.*, ...; a dead server blocks "
             "the probe)",
     .offset = offsetof(struct host_ctx, remote_fs)},
    {.name = "disk_exclude",
     .type = WP_OPT_STRLIST,
     .def = "loop*,ram*,zram*,fd*,sr*",
     .help = "disk name globs without disk series",
     .offset = offsetof(struct host_ctx, disk_exclude)},
    {.name = "net_exclude",
     .type = WP_OPT_STRLIST,
     .def = "lo",
     .help = "interface name globs without net series",
     .offset = offsetof(struct host_ctx, net_exclude)},
    {.name = "per_cpu",
     .type = WP_OPT_BOOL,
     .def = "true",
     .help = "a cpu series per core besides cpu/total",
     .offset = offsetof(struct host_ctx, per_cpu)},
    {.name = "procs_interval",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .help = "how often to count processes (a scan of proc_root); 0 = every sample",
     .offset = offsetof(struct host_ctx, procs_interval_ms),
     .min = 0,
     .max = 86400000},
    WP_OPT_TABLE_END,
};

static const char *const cpu_fields[] = {"user", "nice",    "system", "iowait",
                                         "irq",  "softirq", "steal",  "idle"};
static const char *const mem_fields[] = {"total",   "used",   "available",  "free",
                                         "buffers", "cached", "swap_total", "swap_used"};
static const char *const load_fields[] = {"load1", "load5", "load15"};
static const char *const sys_fields[] = {"uptime", "procs", "procs_running", "procs_blocked",
                                         "threads"};
static const char *const df_fields[] = {"bytes_total",  "bytes_used",  "bytes_avail",    "used_pct",
                                        "inodes_total", "inodes_used", "inodes_used_pct"};
static const char *const disk_fields[] = {"rd_ops",   "wr_ops",   "rd_bytes",
                                          "wr_bytes", "busy_pct", "await_ms"};
static const char *const net_fields[] = {"rx_bytes",  "tx_bytes",  "rx_packets", "tx_packets",
                                         "rx_errors", "tx_errors", "rx_drops",   "tx_drops"};

static const struct wp_series_kind kind_cpu = {"cpu", cpu_fields, 8, WP_DS_GAUGE};
static const struct wp_series_kind kind_mem = {"mem", mem_fields, 8, WP_DS_GAUGE};
static const struct wp_series_kind kind_load = {"load", load_fields, 3, WP_DS_GAUGE};
static const struct wp_series_kind kind_sys = {"system", sys_fields, 5, WP_DS_GAUGE};
static const struct wp_series_kind kind_df = {"df", df_fields, 7, WP_DS_GAUGE};
static const struct wp_series_kind kind_disk = {"disk", disk_fields, 6, WP_DS_GAUGE};
static const struct wp_series_kind kind_net = {"net", net_fields, 8, WP_DS_GAUGE};

/* Types whose statvfs() may block on a server (skipped unless remote_fs). */
static const char *const remote_types[] = {
    "nfs",       "nfs4",           "cifs",   "smb3", "smbfs", "ncpfs",      "ceph", "9p",
    "glusterfs", "fuse.glusterfs", "lustre", "afs",  "davfs", "fuse.sshfs", "fuse", NULL};

static const char *const file_names[HOST_F_COUNT] = {
    [HOST_F_STAT] = "stat",     [HOST_F_MEMINFO] = "meminfo",     [HOST_F_LOADAVG] = "loadavg",
    [HOST_F_UPTIME] = "uptime", [HOST_F_DISKSTATS] = "diskstats", [HOST_F_NETDEV] = "net/dev",
    [HOST_F_MOUNTS] = "mounts",
};

/* ---- parsing helpers ---- */

/* Skip blanks, parse an unsigned decimal and move *pp past it; 0 when there are no digits. */
static uint64_t scan_u64(const char **pp)
{
    const char *s = *pp;
    uint64_t v = 0;

    while (*s == ' ' || *s == '\t') {
        s++;
    }
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *pp = s;
    return v;
}

/* The start of the line after s (or the terminating NUL). */
static const char *next_line(const char *s)
{
    const char *nl = strchr(s, '\n');

    return nl != NULL ? nl + 1 : s + strlen(s);
}

static int list_has(const struct wp_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

static int list_match(const struct wp_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (fnmatch(l->v[i], s, 0) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Copy the items of in into out, splitting each at commas and trimming blanks. */
static void split_list(const struct wp_strlist *in, struct wp_strlist *out)
{
    size_t cap = 1;

    out->n = 0;
    out->v = wp_xcalloc(1, sizeof(*out->v));
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->v[i];
        while (*s != '\0') {
            size_t n = strcspn(s, ",");
            const char *a = s;
            const char *b = s + n;
            while (a < b && (*a == ' ' || *a == '\t')) {
                a++;
            }
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) {
                b--;
            }
            if (b > a) {
                if (out->n + 2 > cap) {
                    cap *= 2;
                    out->v = wp_xrealloc(out->v, cap * sizeof(*out->v));
                }
                out->v[out->n++] = wp_xstrndup(a, (size_t)(b - a));
                out->v[out->n] = NULL;
            }
            s += n;
            if (*s == ',') {
                s++;
            }
        }
    }
}

/* ---- files ---- */

/* Read the whole file at offset 0 into c->buf; returns its length or a negative error. */
static ssize_t read_all(struct host_ctx *c, int fd)
{
    for (int tries = 0; tries < 32; tries++) {
        ssize_t n = pread(fd, c->buf, c->cap - 1, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        /* a short read is the end: procfs seq files fill the whole buffer otherwise */
        if ((size_t)n < c->cap - 1) {
            c->buf[n] = '\0';
            return n;
        }
        if (c->cap >= HOST_BUF_MAX) {
            return WP_ETOOBIG;
        }
        c->cap *= 2;
        c->buf = wp_xrealloc(c->buf, c->cap);
    }
    return -EINTR;
}

/* Read f into c->buf, opening it if needed and reopening it once after a failed read. */
static int file_read(struct host_ctx *c, struct host_file *f, size_t *len)
{
    ssize_t n = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = 0;
        if (f->fd < 0) {
            f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
            if (f->fd < 0) {
                return -errno;
            }
            fresh = 1;
        }
        n = read_all(c, f->fd);
        if (n >= 0) {
            *len = (size_t)n;
            return 0;
        }
        close(f->fd);
        f->fd = -1;
        if (fresh) {
            break;
        }
    }
    return (int)n;
}

/* file_read() that logs a failure once and its recovery once. */
static int host_read(struct wp_probe *p, struct host_ctx *c, int which, size_t *len)
{
    struct host_file *f = &c->f[which];
    int rc = file_read(c, f, len);

    if (rc < 0 && !f->failing) {
        WP_PLOG(p, WP_LOG_WARN, "cannot read %s: %s", f->path, wp_strerror(rc));
        f->failing = 1;
    } else if (rc == 0 && f->failing) {
        WP_PLOG(p, WP_LOG_INFO, "reading %s again", f->path);
        f->failing = 0;
    }
    return rc;
}

/* Log once that the file just read does not look as expected; returns WP_EPROTO. */
static int parse_failed(struct wp_probe *p, struct host_ctx *c, int which)
{
    struct host_file *f = &c->f[which];

    if (!f->bad) {
        WP_PLOG(p, WP_LOG_WARN, "cannot parse %s", f->path);
        f->bad = 1;
    }
    return WP_EPROTO;
}

/* ---- counter tables ---- */

static void table_free(struct host_table *t)
{
    free(t->cur);
    free(t->prev);
    memset(t, 0, sizeof(*t));
}

/*
 * Append an instance named name[0..len) to t->cur. *old is its entry from the previous
 * sample or NULL; the new entry inherits old's wanted flag, else *decide is set and the
 * caller sets it. Returns NULL for a name that does not fit.
 */
static struct host_inst *table_add(struct host_table *t, const char *name, size_t len,
                                   const struct host_inst **old, int *decide)
{
    struct host_inst *e = NULL;
    const struct host_inst *o = NULL;
    size_t i = t->ncur;

    *old = NULL;
    *decide = 0;
    if (len == 0 || len >= HOST_NAME_LEN) {
        return NULL;
    }
    if (t->ncur == t->capcur) {
        t->capcur = t->capcur != 0 ? t->capcur * 2 : 16;
        t->cur = wp_xrealloc(t->cur, t->capcur * sizeof(*t->cur));
    }
    e = &t->cur[t->ncur++];
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    /* the same line as last time is the common case; search only when the set changed */
    if (i < t->nprev && strcmp(t->prev[i].name, e->name) == 0) {
        o = &t->prev[i];
    } else {
        for (size_t j = 0; j < t->nprev; j++) {
            if (strcmp(t->prev[j].name, e->name) == 0) {
                o = &t->prev[j];
                break;
            }
        }
    }
    if (o != NULL) {
        e->wanted = o->wanted;
    } else {
        *decide = 1;
    }
    *old = o;
    return e;
}

/* Make this sample's entries the previous ones; instances not seen this time are dropped. */
static void table_swap(struct host_table *t)
{
    struct host_inst *v = t->prev;
    size_t cap = t->capprev;

    t->prev = t->cur;
    t->capprev = t->capcur;
    t->nprev = t->ncur;
    t->cur = v;
    t->capcur = cap;
    t->ncur = 0;
}

/* Seconds between the previous sample of an instance and now, or 0 when there is none. */
static double interval_s(const struct host_inst *old, int64_t now_ms)
{
    if (old == NULL || now_ms <= old->ts_ms) {
        return 0.0;
    }
    return (double)(now_ms - old->ts_ms) / 1000.0;
}

/* Counter i per second, NaN without a previous sample or when the counter went back. */
static double rate(const struct host_inst *e, const struct host_inst *old, int i, double dt)
{
    if (dt <= 0.0 || e->c[i] < old->c[i]) {
        return NAN;
    }
    return (double)(e->c[i] - old->c[i]) / dt;
}

/* ---- cpu and /proc/stat ---- */

struct host_sys {
    double running, blocked, threads, uptime;
};

/* The cpu row from the /proc/stat columns user nice system idle iowait irq softirq steal. */
static void cpu_row(const struct host_inst *e, const struct host_inst *old, int64_t now_ms,
                    double *v)
{
    static const int order[8] = {0, 1, 2, 4, 5, 6, 7, 3}; /* output field -> column */
    uint64_t d[8] = {0};
    uint64_t tot_now = 0, tot_old = 0, tot = 0;

    for (int i = 0; i < 8; i++) {
        v[i] = NAN;
    }
    if (interval_s(old, now_ms) <= 0.0) {
        return;
    }
    for (int i = 0; i < 8; i++) {
        tot_now += e->c[i];
        tot_old += old->c[i];
        d[i] = e->c[i] >= old->c[i] ? e->c[i] - old->c[i] : 0;
        tot += d[i];
    }
    if (tot_now < tot_old || tot == 0) {
        return;
    }
    for (int i = 0; i < 8; i++) {
        v[i] = (double)d[order[i]] * 100.0 / (double)tot;
    }
}

static int sample_stat(struct wp_probe *p, struct host_ctx *c, struct wp_sink *out,
                       struct host_sys *sys)
{
    size_t len = 0;
    int rc = host_read(p, c, HOST_F_STAT, &len);

    if (rc < 0) {
        return rc;
    }
    for (const char *s = c->buf; *s != '\0'; s = next_line(s)) {
        if (strncmp(s, "cpu", 3) == 0) {
            const struct host_inst *old = NULL;
            int decide = 0;
            size_t n = strcspn(s, " \t\n");
            struct host_inst *e = table_add(&c->cpu, s, n, &old, &decide);
            if (e == NULL) {
                continue;
            }
            if (decide) {
                e->wanted = n == 3 || c->per_cpu;
            }
            const char *q = s + n;
            for (int i = 0; i < 8; i++) {
                e->c[i] = scan_u64(&q); /* missing columns (old kernels) read as 0 */
            }
            e->ts_ms = out->ts_ms;
            if (e->wanted) {
                double v[8];
                cpu_row(e, old, out->ts_ms, v);
                wp_sink_metric(out, &kind_cpu, n == 3 ? "total" : e->name + 3, v);
            }
        } else if (strncmp(s, "procs_running ", 14) == 0) {
            const char *q = s + 14;
            sys->running = (double)scan_u64(&q);
        } else if (strncmp(s, "procs_blocked ", 14) == 0) {
            const char *q = s + 14;
            sys->blocked = (double)scan_u64(&q);
        }
    }
    table_swap(&c->cpu);
    return 0;
}

/* ---- memory, load, uptime ---- */

static int sample_mem(struct wp_probe *p, struct host_ctx *c, struct wp_sink *out)
{
    enum { TOTAL, FREE, AVAIL, BUFFERS, CACHED, SRECL, SWTOTAL, SWFREE, NKEYS };
    static const char *const keys[NKEYS] = {"MemTotal", "MemFree",      "MemAvailable", "Buffers",
                                            "Cached",   "SReclaimable", "SwapTotal",    "SwapFree"};
    uint64_t kb[NKEYS] = {0};
    int seen[NKEYS] = {0};
    size_t len = 0;
    double v[8];
    int rc = host_read(p, c, HOST_F_MEMINFO, &len);

    if (rc < 0) {
        return rc;
    }
    for (const char *s = c->buf; *s != '\0'; s = next_line(s)) {
        size_t n = strcspn(s, ":\n");
        if (s[n] != ':') {
            continue;
        }
        for (int k = 0; k < NKEYS; k++) {
            if (!seen[k] && strlen(keys[k]) == n && memcmp(s, keys[k], n) == 0) {
                const char *q = s + n + 1;
                kb[k] = scan_u64(&q);
                seen[k] = 1;
                break;
            }
        }
    }
    if (!seen[TOTAL]) {
        return parse_failed(p, c, HOST_F_MEMINFO);
    }
    c->f[HOST_F_MEMINFO].bad = 0;
    double cached = (double)(kb[CACHED] + kb[SRECL]) * 1024.0;
    double avail = seen[AVAIL] ? (double)kb[AVAIL] * 1024.0
                               : (double)(kb[FREE] + kb[BUFFERS]) * 1024.0 + cached;
    v[0] = (double)kb[TOTAL] * 1024.0;
    v[1] = v[0] > avail ? v[0] - avail : 0.0;
    v[2] = avail;
    v[3] = (double)kb[FREE] * 1024.0;
    v[4] = (double)kb[BUFFERS] * 1024.0;
    v[5] = cached;
    v[6] = (double)kb[SWTOTAL] * 1024.0;
    v[7] = kb[SWTOTAL] > kb[SWFREE] ? (double)(kb[SWTOTAL] - kb[SWFREE]) * 1024.0 : 0.0;
    wp_sink_metric(out, &kind_mem, "", v);
    return 0;
}

static int sample_load(struct wp_probe *p, struct host_ctx *c, struct wp_sink *out,
                       struct host_sys *sys)
{
    size_t len = 0;
    double v[3];
    char *q = NULL;
    const char *s = NULL;
    int rc = host_read(p, c, HOST_F_LOADAVG, &len);

    if (rc < 0) {
        return rc;
    }
    s = c->buf; /* after the read: it may have moved the buffer */
    for (int i = 0; i < 3; i++) {
        v[i] = strtod(s, &q);
        if (q == s) {
            return parse_failed(p, c, HOST_F_LOADAVG);
        }
        s = q;
    }
    c->f[HOST_F_LOADAVG].bad = 0;
    wp_sink_metric(out, &kind_load, "", v);
    /* " 5/101 5749": running/total scheduling entities, then the last pid */
    s = strchr(s, '/');
    if (s != NULL) {
        s++;
        sys->threads = (double)scan_u64(&s);
    }
    return 0;
}

static int sample_uptime(struct wp_probe *p, struct host_ctx *c, struct host_sys *sys)
{
    size_t len = 0;
    char *q = NULL;
    int rc = host_read(p, c, HOST_F_UPTIME, &len);

    if (rc < 0) {
        return rc;
    }
    double up = strtod(c->buf, &q);
    if (q == c->buf) {
        return parse_failed(p, c, HOST_F_UPTIME);
    }
    c->f[HOST_F_UPTIME].bad = 0;
    sys->uptime = up;
    return 0;
}

/* Count the numeric entries of proc_root (processes), at most every procs_interval. */
static void count_procs(struct wp_probe *p, struct host_ctx *c, int64_t now_ms)
{
    const struct dirent *d = NULL;
    size_t n = 0;

    if (c->procs_valid && now_ms >= c->procs_ts_ms &&
        now_ms - c->procs_ts_ms < c->procs_interval_ms) {
        return;
    }
    if (c->procdir == NULL) {
        c->procdir = opendir(c->proc_root);
        if (c->procdir == NULL) {
            if (!c->procs_failing) {
                WP_PLOG(p, WP_LOG_WARN, "cannot list %s: %s", c->proc_root, wp_strerror(-errno));
                c->procs_failing = 1;
            }
            c->procs = NAN;
            c->procs_valid = 0;
            return;
        }
        c->procs_failing = 0;
    } else {
        rewinddir(c->procdir);
    }
    while ((d = readdir(c->procdir)) != NULL) {
        const char *q = d->d_name;
        while (*q >= '0' && *q <= '9') {
            q++;
        }
        if (*q == '\0' && q != d->d_name) {
            n++;
        }
    }
    c->procs = (double)n;
    c->procs_ts_ms = now_ms;
    c->procs_valid = 1;
}

/* ---- disks ---- */

static void blk_free(struct host_ctx *c)
{
    for (size_t i = 0; i < c->nblk; i++) {
        free(c->blk[i]);
    }
    free(c->blk);
    c->blk = NULL;
    c->nblk = 0;
}

/* Re-read the whole-disk names under <sys_root>/block (once per sample at most). */
static void blk_scan(struct wp_probe *p, struct host_ctx *c)
{
    DIR *dir = NULL;
    const struct dirent *d = NULL;
    size_t cap = 0;

    if (c->blk_scanned) {
        return;
    }
    c->blk_scanned = 1;
    blk_free(c);
    dir = opendir(c->block_dir);
    if (dir == NULL) {
        WP_PLOG(p, WP_LOG_WARN, "cannot list %s: %s", c->block_dir, wp_strerror(-errno));
        return;
    }
    while ((d = readdir(dir)) != NULL) {
        if (d->d_name[0] == '.') {
            continue;
        }
        if (c->nblk == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            c->blk = wp_xrealloc(c->blk, cap * sizeof(*c->blk));
        }
        c->blk[c->nblk++] = wp_xstrdup(d->d_name);
    }
    closedir(dir);
}

static int is_whole_disk(const struct host_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->nblk; i++) {
        if (strcmp(c->blk[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

static void disk_row(const struct host_inst *e, const struct host_inst *old, int64_t now_ms,
                     double *v)
{
    /* e->c: 0 rd_ios, 1 rd_sectors, 2 rd_ticks, 3 wr_ios, 4 wr_sectors, 5 wr_ticks, 6 io_ticks */
    double dt = interval_s(old, now_ms);

    for (int i = 0; i < 6; i++) {
        v[i] = NAN;
    }
    if (dt <= 0.0) {
        return;
    }
    v[0] = rate(e, old, 0, dt);
    v[1] = rate(e, old, 3, dt);
    v[2] = rate(e, old, 1, dt) * 512.0;
    v[3] = rate(e, old, 4, dt) * 512.0;
    /* io_ticks is ms busy: per second of interval that is ms/s, /10 gives percent */
    double busy = rate(e, old, 6, dt) / 10.0;
    v[4] = busy > 100.0 ? 100.0 : busy;
    double ops = rate(e, old, 0, 1.0) + rate(e, old, 3, 1.0);
    double ticks = rate(e, old, 2, 1.0) + rate(e, old, 5, 1.0);
    v[5] = ops > 0.0 ? ticks / ops : (isnan(ops) || isnan(ticks) ? NAN : 0.0);
}

static int sample_disk(struct wp_probe *p, struct host_ctx *c, struct wp_sink *out)
{
    size_t len = 0;
    int rc = host_read(p, c, HOST_F_DISKSTATS, &len);

    if (rc < 0) {
        return rc;
    }
    c->blk_scanned = 0;
    for (const char *s = c->buf; *s != '\0'; s = next_line(s)) {
        const char *q = s;
        const struct host_inst *old = NULL;
        int decide = 0;
        uint64_t f[10];

        (void)scan_u64(&q); /* major */
        (void)scan_u64(&q); /* minor */
        q += strspn(q, " \t");
        size_t n = strcspn(q, " \t\n");
        struct host_inst *e = table_add(&c->disk, q, n, &old, &decide);
        if (e == NULL) {
            continue;
        }
        q += n;
        for (int i = 0; i < 10; i++) {
            f[i] = scan_u64(&q);
        }
        e->c[0] = f[0]; /* reads completed */
        e->c[1] = f[2]; /* sectors read */
        e->c[2] = f[3]; /* ms reading */
        e->c[3] = f[4]; /* writes completed */
        e->c[4] = f[6]; /* sectors written */
        e->c[5] = f[7]; /* ms writing */
        e->c[6] = f[9]; /* ms doing I/O */
        e->c[7] = 0;
        e->ts_ms = out->ts_ms;
        if (decide) {
            blk_scan(p, c);
            e->wanted = is_whole_disk(c, e->name) && !list_match(&c->disk_excl, e->name);
        }
        if (e->wanted) {
            double v[6];
            disk_row(e, old, out->ts_ms, v);
            wp_sink_metric(out, &kind_disk, e->name, v);
        }
    }
    table_swap(&c->disk);
    return 0;
}

/* ---- network ---- */

static int sample_net(struct wp_probe *p, struct host_ctx *c, struct wp_sink *out)
{
    /* /proc/net/dev columns kept, in output order: rx bytes, tx bytes, rx packets, ... */
    static const int col[8] = {0, 8, 1, 9, 2, 10, 3, 11};
    size_t len = 0;
    int rc = host_read(p, c, HOST_F_NETDEV, &len);

    if (rc < 0) {
        return rc;
    }
    for (const char *s = c->buf; *s != '\0'; s = next_line(s)) {
        const char *q = s + strspn(s, " \t");
        const struct host_inst *old = NULL;
        int decide = 0;
        uint64_t f[12];
        size_t n = strcspn(q, ":\n");

        if (q[n] != ':') {
            continue; /* the two header lines */
        }
        struct host_inst *e = table_add(&c->net, q, n, &old, &decide);
        if (e == NULL) {
            continue;
        }
        q += n + 1;
        for (int i = 0; i < 12; i++) {
            f[i] = scan_u64(&q);
        }
        for (int i = 0; i < 8; i++) {
            e->c[i] = f[col[i]];
        }
        e->ts_ms = out->ts_ms;
        if (decide) {
            e->wanted = !list_match(&c->net_excl, e->name);
        }
        if (e->wanted) {
            double v[8];
            double dt = interval_s(old, out->ts_ms);
            for (int i = 0; i < 8; i++) {
                v[i] = dt > 0.0 ? rate(e, old, i, dt) : NAN;
            }
            wp_sink_metric(out, &kind_net, e->name, v);
        }
    }
    table_swap(&c->net);
    return 0;
}

/* ---- file systems ---- */

static void mounts_free(struct host_ctx *c)
{
    for (size_t i = 0; i < c->nmounts; i++) {
        free(c->mounts[i].mnt);
        free(c->mounts[i].path);
    }
    free(c->mounts);
    c->mounts = NULL;
    c->nmounts = 0;
}

/* Decode the mount table's octal escapes (\040 space, \011 tab, \012, \134) in place. */
static void unescape(char *s)
{
    char *w = s;

    for (const char *r = s; *r != '\0'; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Cut the next blank-separated field of the (NUL-terminated) line at *pp; NULL at its end. */
static char *cut_field(char **pp)
{
    char *s = *pp + strspn(*pp, " \t");
    size_t n = strcspn(s, " \t");

    if (n == 0) {
        return NULL;
    }
    *pp = s + n;
    if (**pp != '\0') {
        **pp = '\0';
        (*pp)++;
    }
    return s;
}

static int is_remote(const char *type)
{
    for (size_t i = 0; remote_types[i] != NULL; i++) {
        if (strcmp(type, remote_types[i]) == 0) {
            return 1;
        }
    }
    return strncmp(type, "fuse.", 5) == 0;
}

static int mount_kept(const struct host_ctx *c, const char *mnt, const char *type)
{
    if (c->fs_incl.n > 0 ? !list_has(&c->fs_incl, type) : list_has(&c->fs_excl, type)) {
        return 0;
    }
    if (!c->remote_fs && is_remote(type)) {
        return 0;
    }
    if (strlen(mnt) >= WP_INST_MAX || list_match(&c->mnt_excl, mnt)) {
        return 0;
    }
    return 1;
}

/* Parse the mount table in c->buf (modified in place) into c->mounts. */
static void mounts_parse(struct host_ctx *c)
{
    size_t n = 0;
    char *s = c->buf;

    mounts_free(c);
    while (*s != '\0') {
        char *eol = strchr(s, '\n');
        char *next = eol != NULL ? eol + 1 : s + strlen(s);
        char *q = s;
        if (eol != NULL) {
            *eol = '\0';
        }
        const char *dev = cut_field(&q);
        char *mnt = cut_field(&q);
        const char *type = cut_field(&q);
        s = next;
        if (dev == NULL || mnt == NULL || type == NULL) {
            continue;
        }
        unescape(mnt);
        if (n == c->mlines_cap) {
            c->mlines_cap = c->mlines_cap != 0 ? c->mlines_cap * 2 : 64;
            c->mlines = wp_xrealloc(c->mlines, c->mlines_cap * sizeof(*c->mlines));
        }
        c->mlines[n].mnt = mnt;
        c->mlines[n].type = type;
        n++;
    }
    c->mounts = wp_xcalloc(n + 1, sizeof(*c->mounts));
    for (size_t i = 0; i < n; i++) {
        const struct host_mline *m = &c->mlines[i];
        int shadowed = 0;
        if (!mount_kept(c, m->mnt, m->type)) {
            continue;
        }
        /* a later mount on the same point hides this one (and bind duplicates count once) */
        for (size_t j = i + 1; j < n && !shadowed; j++) {
            shadowed = strcmp(c->mlines[j].mnt, m->mnt) == 0;
        }
        if (shadowed) {
            continue;
        }
        struct host_mount *hm = &c->mounts[c->nmounts++];
        hm->mnt = wp_xstrdup(m->mnt);
        if (strcmp(c->root_fs, "/") == 0) {
            hm->path = wp_xstrdup(m->mnt);
        } else {
            size_t rl = strlen(c->root_fs);
            while (rl > 1 && c->root_fs[rl - 1] == '/') {
                rl--;
            }
            hm->path = wp_xasprintf("%.*s%s", (int)rl, c->root_fs, m->mnt);
        }
    }
}

static void df_row(const struct statvfs *st, double *v)
{
    double frsize = (double)(st->f_frsize != 0 ? st->f_frsize : st->f_bsize);
    uint64_t used_blocks = st->f_blocks > st->f_bfree ? st->f_blocks - st->f_bfree : 0;
    double used = (double)used_blocks * frsize;
    double avail = (double)st->f_bavail * frsize;
    uint64_t iused = st->f_files > st->f_ffree ? st->f_files - st->f_ffree : 0;

    v[0] = (double)st->f_blocks * frsize;
    v[1] = used;
    v[2] = avail;
    v[3] = used + avail > 0.0 ? used * 100.0 / (used + avail) : NAN;
    v[4] = (double)st->f_files;
    v[5] = (double)iused;
    v[6] = st->f_files > 0 && iused + st->f_favail > 0
               ? (double)iused * 100.0 / (double)(iused + st->f_favail)
               : NAN;
}

static int sample_df(struct wp_probe *p, struct host_ctx *c, struct wp_sink *out)
{
    size_t len = 0;
    int rc = host_read(p, c, HOST_F_MOUNTS, &len);

    if (rc < 0) {
        return rc;
    }
    if (!c->mnt_valid || len != c->mnt_raw_len || memcmp(c->buf, c->mnt_raw, len) != 0) {
        if (len + 1 > c->mnt_raw_cap) {
            c->mnt_raw_cap = len + 1;
            c->mnt_raw = wp_xrealloc(c->mnt_raw, c->mnt_raw_cap);
        }
        memcpy(c->mnt_raw, c->buf, len + 1);
        c->mnt_raw_len = len;
        c->mnt_valid = 1;
        mounts_parse(c);
    }
    for (size_t i = 0; i < c->nmounts; i++) {
        struct host_mount *m = &c->mounts[i];
        struct statvfs st;
        double v[7];
        if (statvfs(m->path, &st) != 0) {
            if (!m->failing) {
                WP_PLOG(p, WP_LOG_WARN, "statvfs %s: %s", m->path, wp_strerror(-errno));
                m->failing = 1;
            }
            continue;
        }
        if (m->failing) {
            WP_PLOG(p, WP_LOG_INFO, "statvfs %s works again", m->path);
            m->failing = 0;
        }
        df_row(&st, v);
        wp_sink_metric(out, &kind_df, m->mnt, v);
    }
    return 0;
}

/* ---- probe callbacks ---- */

static void tally(int rc, int *ok, int *last)
{
    if (rc == 0) {
        (*ok)++;
    } else {
        *last = rc;
    }
}

static int host_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct host_ctx *c = p->ctx;
    struct host_sys sys = {NAN, NAN, NAN, NAN};
    int last = 0, ok = 0;

    tally(sample_stat(p, c, out, &sys), &ok, &last);
    tally(sample_mem(p, c, out), &ok, &last);
    tally(sample_load(p, c, out, &sys), &ok, &last);
    tally(sample_uptime(p, c, &sys), &ok, &last);
    count_procs(p, c, out->ts_ms);
    {
        double v[5] = {sys.uptime, c->procs, sys.running, sys.blocked, sys.threads};
        wp_sink_metric(out, &kind_sys, "", v);
    }
    tally(sample_df(p, c, out), &ok, &last);
    tally(sample_disk(p, c, out), &ok, &last);
    tally(sample_net(p, c, out), &ok, &last);
    /* failures were logged per file; only a probe that read nothing reports an error */
    return ok > 0 ? 0 : last;
}

static void host_destroy(struct wp_probe *p)
{
    struct host_ctx *c = p->ctx;

    if (c == NULL) {
        return;
    }
    for (int i = 0; i < HOST_F_COUNT; i++) {
        /* a zeroed ctx (init never ran) has fd 0 here: init sets -1 before allocating buf */
        if (c->buf != NULL && c->f[i].fd >= 0) {
            close(c->f[i].fd);
        }
        c->f[i].fd = -1;
        free(c->f[i].path);
        c->f[i].path = NULL;
    }
    free(c->buf);
    c->buf = NULL;
    wp_strlist_free(&c->fs_excl);
    wp_strlist_free(&c->fs_incl);
    wp_strlist_free(&c->mnt_excl);
    wp_strlist_free(&c->disk_excl);
    wp_strlist_free(&c->net_excl);
    table_free(&c->cpu);
    table_free(&c->disk);
    table_free(&c->net);
    blk_free(c);
    free(c->block_dir);
    c->block_dir = NULL;
    mounts_free(c);
    free(c->mnt_raw);
    c->mnt_raw = NULL;
    free(c->mlines);
    c->mlines = NULL;
    if (c->procdir != NULL) {
        closedir(c->procdir);
        c->procdir = NULL;
    }
}

static int host_init(struct wp_probe *p)
{
    struct host_ctx *c = p->ctx;
    size_t len = 0;
    int rc = 0;

    for (int i = 0; i < HOST_F_COUNT; i++) {
        c->f[i].fd = -1;
    }
    if (c->proc_root == NULL || c->sys_root == NULL || c->root_fs == NULL ||
        c->root_fs[0] == '\0') {
        WP_PLOG(p, WP_LOG_ERROR, "proc_root, sys_root and root_fs must be set");
        return WP_ECONFIG;
    }
    c->cap = HOST_BUF_INIT;
    c->buf = wp_xmalloc(c->cap);
    for (int i = 0; i < HOST_F_COUNT; i++) {
        c->f[i].path = wp_xasprintf("%s/%s", c->proc_root, file_names[i]);
    }
    c->block_dir = wp_xasprintf("%s/block", c->sys_root);
    split_list(&c->fs_exclude_types, &c->fs_excl);
    split_list(&c->fs_include_types, &c->fs_incl);
    split_list(&c->mount_exclude, &c->mnt_excl);
    split_list(&c->disk_exclude, &c->disk_excl);
    split_list(&c->net_exclude, &c->net_excl);
    c->procs = NAN;

    /* PID 1's mount table when readable (the host's view from a container or sandbox) */
    char *init_mounts = wp_xasprintf("%s/1/mounts", c->proc_root);
    if (access(init_mounts, R_OK) == 0) {
        free(c->f[HOST_F_MOUNTS].path);
        c->f[HOST_F_MOUNTS].path = init_mounts;
    } else {
        free(init_mounts);
    }

    rc = file_read(c, &c->f[HOST_F_STAT], &len);
    if (rc < 0) {
        WP_PLOG(p, WP_LOG_ERROR, "cannot read %s: %s (check proc_root)", c->f[HOST_F_STAT].path,
                wp_strerror(rc));
        return rc;
    }
    if (strncmp(c->buf, "cpu", 3) != 0) {
        WP_PLOG(p, WP_LOG_ERROR, "%s does not start with a cpu line (check proc_root)",
                c->f[HOST_F_STAT].path);
        return WP_ECONFIG;
    }
    return 0;
}

const struct wp_probe_ops wp_probe_host = {
    .name = "host",
    .summary = "CPU, memory, load, processes, file systems, disks and network of this host",
    .opts = host_opts,
    .ctx_size = sizeof(struct host_ctx),
    .flags = 0,
    .init = host_init,
    .sample = host_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = host_destroy,
    .committed = NULL,
};
