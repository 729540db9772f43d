/* SPDX-License-Identifier: Apache-2.0 */
/* Replay driver for libFuzzer targets built without libFuzzer (any compiler): feeds every
 * file of the given directories to LLVMFuzzerTestOneInput, then pseudo-random mutations
 * of them from a fixed-seed xorshift, so the same inputs run on every build. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INPUT_MAX (256u << 10) /* mutated inputs stay below this */
#define SEEDS_MAX 4096
#define MUTATIONS 20000u
#define RNG_SEED  0x9e3779b97f4a7c15ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seed {
    uint8_t *p;
    size_t n;
};

struct corpus {
    struct seed s[SEEDS_MAX];
    size_t n;
};

static uint64_t rng_state = RNG_SEED;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static size_t below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd() % n);
}

/* Run one input from an exact-size heap copy, so that reads past its end are caught. */
static void run(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (copy == NULL) {
        fprintf(stderr, "replay: out of memory\n");
        exit(2);
    }
    if (n > 0) {
        memcpy(copy, p, n);
    }
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
}

static int load_file(struct corpus *c, const char *path)
{
    int rc = 0;
    FILE *fp = NULL;
    uint8_t *data = NULL;
    struct stat st;

    if (c->n == SEEDS_MAX) {
        return 0;
    }
    fp = fopen(path, "rbe");
    if (fp == NULL || fstat(fileno(fp), &st) < 0) {
        rc = -errno;
        goto out;
    }
    data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (data == NULL || fread(data, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
        rc = -EIO;
        goto out;
    }
    c->s[c->n].p = data;
    c->s[c->n].n = (size_t)st.st_size;
    c->n++;
    data = NULL;
out:
    free(data);
    if (fp != NULL) {
        fclose(fp);
    }
    if (rc < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(-rc));
    }
    return rc;
}

static int load(struct corpus *c, const char *path)
{
    struct stat st;
    DIR *d = NULL;
    struct dirent *de = NULL;
    int rc = 0;

    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        return load_file(c, path);
    }
    d = opendir(path);
    if (d == NULL) {
        return -errno;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        size_t len = strlen(path) + strlen(de->d_name) + 2;
        char *full = malloc(len);
        if (full == NULL) {
            rc = -ENOMEM;
            break;
        }
        snprintf(full, len, "%s/%s", path, de->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            rc = load_file(c, full);
        }
        free(full);
    }
    closedir(d);
    return rc;
}

static const uint8_t interesting8[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                       0xc0, 0xc1, 0xc2, 0xc4, 0xc7, 0xca, 0xcb, 0xcc, 0xcf,
                                       0xd3, 0xd4, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
static const uint32_t interesting32[] = {0,          1,          2,          0x7f,      0x80,
                                         0xff,       0xffff,     0x10000,    0x100000,  0x100001,
                                         0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff};

/* Apply one random edit to buf[0..*n) (capacity INPUT_MAX). */
static void mutate_once(uint8_t *buf, size_t *n, const struct corpus *c)
{
    size_t len = *n;
    size_t pos = below(len + 1);

    switch (rnd() % 10) {
    case 0: /* flip a bit */
        if (len > 0) {
            buf[below(len)] ^= (uint8_t)(1u << (rnd() % 8));
        }
        break;
    case 1: /* a msgpack type byte or boundary value */
        if (len > 0) {
            buf[below(len)] = interesting8[below(sizeof(interesting8))];
        }
        break;
    case 2: /* any byte */
        if (len > 0) {
            buf[below(len)] = (uint8_t)rnd();
        }
        break;
    case 3: { /* insert bytes */
        size_t k = 1 + below(8);
        if (len + k <= INPUT_MAX) {
            memmove(buf + pos + k, buf + pos, len - pos);
            for (size_t i = 0; i < k; i++) {
                buf[pos + i] =
                    (rnd() & 1) ? (uint8_t)rnd() : interesting8[below(sizeof(interesting8))];
            }
            len += k;
        }
        break;
    }
    case 4: { /* delete bytes */
        size_t k = 1 + below(16);
        if (pos < len) {
            k = k > len - pos ? len - pos : k;
            memmove(buf + pos, buf + pos + k, len - pos - k);
            len -= k;
        }
        break;
    }
    case 5: /* truncate */
        len = pos;
        break;
    case 6: { /* duplicate a chunk in place */
        size_t from = below(len);
        size_t k = 1 + below(32);
        if (from < len && len + k <= INPUT_MAX) {
            k = k > len - from ? len - from : k;
            memmove(buf + pos + k, buf + pos, len - pos);
            memmove(buf + pos, buf + (from >= pos ? from + k : from), k);
            len += k;
        }
        break;
    }
    case 7: { /* splice: append another seed (a second frame in the stream) */
        const struct seed *o = &c->s[below(c->n)];
        size_t k = o->n - below(o->n + 1) / 4;
        if (len + k <= INPUT_MAX) {
            memcpy(buf + len, o->p, k);
            len += k;
        }
        break;
    }
    case 8: { /* a 32-bit big-endian boundary value: lengths and counts */
        uint32_t v = interesting32[below(sizeof(interesting32) / sizeof(interesting32[0]))];
        if (len >= 4) {
            size_t at = below(len - 3);
            buf[at] = (uint8_t)(v >> 24);
            buf[at + 1] = (uint8_t)(v >> 16);
            buf[at + 2] = (uint8_t)(v >> 8);
            buf[at + 3] = (uint8_t)v;
        }
        break;
    }
    default: { /* a 16-bit big-endian boundary value */
        uint32_t v = interesting32[below(sizeof(interesting32) / sizeof(interesting32[0]))];
        if (len >= 2) {
            size_t at = below(len - 1);
            buf[at] = (uint8_t)(v >> 8);
            buf[at + 1] = (uint8_t)v;
        }
        break;
    }
    }
    *n = len;
}

int main(int argc, char **argv)
{
    static struct corpus c;
    unsigned long mutations = MUTATIONS;
    uint8_t *buf = NULL;
    int first = 1;

    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        mutations = strtoul(argv[2], NULL, 10);
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: %s [-n MUTATIONS] DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = first; i < argc; i++) {
        if (load(&c, argv[i]) < 0) {
            return 2;
        }
    }
    if (c.n == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return 2;
    }
    for (size_t i = 0; i < c.n; i++) {
        run(c.s[i].p, c.s[i].n);
    }
    buf = malloc(INPUT_MAX);
    if (buf == NULL) {
        return 2;
    }
    for (unsigned long m = 0; m < mutations; m++) {
        const struct seed *s = &c.s[below(c.n)];
        size_t n = s->n > INPUT_MAX ? INPUT_MAX : s->n;
        unsigned edits = 1 + (unsigned)below(4);
        memcpy(buf, s->p, n);
        for (unsigned e = 0; e < edits; e++) {
            mutate_once(buf, &n, &c);
        }
        run(buf, n);
    }
    printf("replay: %zu inputs, %lu mutations, no failure\n", c.n, mutations);
    free(buf);
    for (size_t i = 0; i < c.n; i++) {
        free(c.s[i].p);
    }
    return 0;
}
