/* SPDX-License-Identifier: Apache-2.0 */
/* Report documents: blocks and tables, written as self-contained HTML or CSV (see
 * report_doc.h). */
#include "report_doc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wp/mem.h"

enum blk_kind {
    BLK_H2 = RDOC_H2,
    BLK_H3 = RDOC_H3,
    BLK_PARA = RDOC_PARA,
    BLK_PRE = RDOC_PRE,
    BLK_BLANK = RDOC_BLANK,
    BLK_TABLE = RDOC_TABLE,
    BLK_IMAGE = RDOC_IMAGE
};

struct rtable {
    char *csv_name, *caption;
    int ncols;
    char **cols;
    char **cells;
    size_t ncells, cap;
};

struct blk {
    enum blk_kind kind;
    char *text;
    void *png;
    size_t png_len;
    int n;
    struct rtable *t;
};

struct rdoc {
    char *title, *lang, *empty, *date;
    struct blk *b;
    size_t nb, cap;
};

struct rdoc *rdoc_new(const char *title, const char *lang)
{
    struct rdoc *d = wp_xcalloc(1, sizeof(*d));

    d->title = wp_xstrdup(title != NULL ? title : "");
    d->lang = wp_xstrdup(lang != NULL ? lang : "en");
    d->empty = wp_xstrdup("-");
    d->date = wp_xstrdup("2000-01-01T00:00:00Z");
    return d;
}

static void table_free(struct rtable *t)
{
    if (t == NULL) {
        return;
    }
    for (int i = 0; i < t->ncols; i++) {
        free(t->cols[i]);
    }
    for (size_t i = 0; i < t->ncells; i++) {
        free(t->cells[i]);
    }
    free(t->cols);
    free(t->cells);
    free(t->csv_name);
    free(t->caption);
    free(t);
}

void rdoc_free(struct rdoc *d)
{
    if (d == NULL) {
        return;
    }
    for (size_t i = 0; i < d->nb; i++) {
        free(d->b[i].text);
        free(d->b[i].png);
        table_free(d->b[i].t);
    }
    free(d->b);
    free(d->title);
    free(d->lang);
    free(d->empty);
    free(d->date);
    free(d);
}

void rdoc_set_empty_text(struct rdoc *d, const char *text)
{
    free(d->empty);
    d->empty = wp_xstrdup(text != NULL ? text : "");
}

void rdoc_set_date(struct rdoc *d, const char *iso)
{
    free(d->date);
    d->date = wp_xstrdup(iso != NULL ? iso : "2000-01-01T00:00:00Z");
}

const char *rdoc_title(const struct rdoc *d)
{
    return d->title;
}

const char *rdoc_date(const struct rdoc *d)
{
    return d->date;
}

const char *rdoc_empty_text(const struct rdoc *d)
{
    return d->empty;
}

size_t rdoc_nblocks(const struct rdoc *d)
{
    return d->nb;
}

void rdoc_block_at(const struct rdoc *d, size_t i, struct rdoc_block *out)
{
    const struct blk *b = &d->b[i];

    out->kind = (enum rdoc_kind)b->kind;
    out->text = b->text;
    out->png = b->png;
    out->png_len = b->png_len;
    out->n = b->n;
    out->table = b->t;
}

int rtable_ncols(const struct rtable *t)
{
    return t->ncols;
}

const char *rtable_caption(const struct rtable *t)
{
    return t->caption;
}

const char *rtable_col(const struct rtable *t, int c)
{
    return t->cols[c];
}

const char *rtable_cell_at(const struct rtable *t, size_t r, int c)
{
    return t->cells[r * (size_t)t->ncols + (size_t)c];
}

static struct blk *add(struct rdoc *d, enum blk_kind kind)
{
    if (d->nb == d->cap) {
        d->cap = d->cap != 0 ? d->cap * 2 : 32;
        d->b = wp_xrealloc(d->b, d->cap * sizeof(*d->b));
    }
    struct blk *b = &d->b[d->nb++];
    memset(b, 0, sizeof(*b));
    b->kind = kind;
    return b;
}

void rdoc_heading(struct rdoc *d, int level, const char *text)
{
    add(d, level <= 2 ? BLK_H2 : BLK_H3)->text = wp_xstrdup(text != NULL ? text : "");
}

static char *vfmt(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vfmt(const char *fmt, va_list ap)
{
    va_list aq;
    char *s = NULL;

    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0) {
        return wp_xstrdup("");
    }
    s = wp_xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

void rdoc_para(struct rdoc *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add(d, BLK_PARA)->text = vfmt(fmt, ap);
    va_end(ap);
}

void rdoc_pre(struct rdoc *d, const char *text)
{
    add(d, BLK_PRE)->text = wp_xstrdup(text != NULL ? text : "");
}

void rdoc_blank(struct rdoc *d, int n)
{
    add(d, BLK_BLANK)->n = n;
}

void rdoc_image(struct rdoc *d, const char *svg, size_t svg_len, const void *png, size_t png_len)
{
    struct blk *b = add(d, BLK_IMAGE);

    if (svg != NULL) {
        b->text = wp_xstrndup(svg, svg_len);
    }
    if (png != NULL && png_len > 0) {
        b->png = wp_xmalloc(png_len);
        memcpy(b->png, png, png_len);
        b->png_len = png_len;
    }
}

struct rtable *rdoc_table(struct rdoc *d, const char *csv_name, const char *caption, int ncols,
                          const char *const *cols)
{
    struct rtable *t = wp_xcalloc(1, sizeof(*t));

    t->csv_name = csv_name != NULL ? wp_xstrdup(csv_name) : NULL;
    t->caption = wp_xstrdup(caption != NULL ? caption : "");
    t->ncols = ncols;
    t->cols = wp_xcalloc((size_t)ncols, sizeof(*t->cols));
    for (int i = 0; i < ncols; i++) {
        t->cols[i] = wp_xstrdup(cols[i]);
    }
    add(d, BLK_TABLE)->t = t;
    return t;
}

void rtable_cell(struct rtable *t, const char *fmt, ...)
{
    va_list ap;

    if (t->ncells == t->cap) {
        t->cap = t->cap != 0 ? t->cap * 2 : 64;
        t->cells = wp_xrealloc(t->cells, t->cap * sizeof(*t->cells));
    }
    va_start(ap, fmt);
    t->cells[t->ncells++] = vfmt(fmt, ap);
    va_end(ap);
}

size_t rtable_rows(const struct rtable *t)
{
    return t->ncells / (size_t)t->ncols;
}

/* ---- HTML ---- */

void rdoc_html_escape(FILE *f, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            if (c >= 0x20 || c == '\n' || c == '\t') {
                fputc(c, f);
            }
            break;
        }
    }
}

/* A cell that is a number (or a percentage, or an arrow) is right-aligned. */
static int numeric(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!((*s >= '0' && *s <= '9') || *s == '.' || *s == '%' || *s == ' ')) {
            return 0;
        }
    }
    return 1;
}

#define ST_TABLE "border-collapse:collapse;margin:6px 0 14px 0;font-size:13px"
#define ST_TH    "border:1px solid #b8c2cc;background:#e8eef4;padding:3px 8px;text-align:left"
#define ST_TD    "border:1px solid #d0d7de;padding:3px 8px;vertical-align:top"

static void write_table(const struct rdoc *d, const struct rtable *t, FILE *f)
{
    size_t rows = rtable_rows(t);

    fputs("<table style=\"" ST_TABLE "\">\n", f);
    if (t->caption[0] != '\0') {
        fputs("<caption style=\"text-align:left;font-weight:bold;padding:4px 0\">", f);
        rdoc_html_escape(f, t->caption);
        fputs("</caption>\n", f);
    }
    fputs("<tr>", f);
    for (int c = 0; c < t->ncols; c++) {
        fputs("<th style=\"" ST_TH "\">", f);
        rdoc_html_escape(f, t->cols[c]);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (size_t r = 0; r < rows; r++) {
        fprintf(f, "<tr%s>", r % 2 == 1 ? " style=\"background:#f6f8fa\"" : "");
        for (int c = 0; c < t->ncols; c++) {
            const char *v = t->cells[r * (size_t)t->ncols + (size_t)c];
            fprintf(f, "<td style=\"" ST_TD "%s\">", numeric(v) ? ";text-align:right" : "");
            rdoc_html_escape(f, v);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    if (rows == 0) {
        fprintf(f, "<tr><td style=\"" ST_TD ";color:#6a737d\" colspan=\"%d\">", t->ncols);
        rdoc_html_escape(f, d->empty);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

int rdoc_write_html(const struct rdoc *d, FILE *f)
{
    fputs("<!DOCTYPE html>\n<html lang=\"", f);
    rdoc_html_escape(f, d->lang);
    fputs("\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          f);
    rdoc_html_escape(f, d->title);
    fputs("</title>\n</head>\n<body style=\"font-family:Arial,'Microsoft YaHei','PingFang SC',"
          "sans-serif;color:#1f2328;background:#ffffff;margin:16px;max-width:1100px\">\n"
          "<h1 style=\"font-size:22px;border-bottom:2px solid #0b5394;padding-bottom:4px\">",
          f);
    rdoc_html_escape(f, d->title);
    fputs("</h1>\n", f);
    for (size_t i = 0; i < d->nb; i++) {
        const struct blk *b = &d->b[i];
        switch (b->kind) {
        case BLK_H2:
            fputs("<h2 style=\"font-size:18px;color:#0b5394;margin:22px 0 6px 0\">", f);
            rdoc_html_escape(f, b->text);
            fputs("</h2>\n", f);
            break;
        case BLK_H3:
            fputs("<h3 style=\"font-size:15px;margin:14px 0 4px 0\">", f);
            rdoc_html_escape(f, b->text);
            fputs("</h3>\n", f);
            break;
        case BLK_PARA:
            fputs("<p style=\"font-size:13px;margin:4px 0\">", f);
            rdoc_html_escape(f, b->text);
            fputs("</p>\n", f);
            break;
        case BLK_PRE:
            fputs("<pre style=\"font-size:12px;white-space:pre-wrap;background:#f6f8fa;"
                  "border:1px solid #d0d7de;padding:6px;margin:4px 0\">",
                  f);
            rdoc_html_escape(f, b->text);
            fputs("</pre>\n", f);
            break;
        case BLK_BLANK:
            for (int n = 0; n < b->n; n++) {
                fputs("<div style=\"border-bottom:1px solid #8c959f;height:24px\">&nbsp;</div>\n",
                      f);
            }
            break;
        case BLK_TABLE:
            write_table(d, b->t, f);
            break;
        case BLK_IMAGE:
            /* inline SVG without its XML declaration */
            if (b->text != NULL && strstr(b->text, "<svg") != NULL) {
                fputs("<div style=\"margin:6px 0\">", f);
                fputs(strstr(b->text, "<svg"), f);
                fputs("</div>\n", f);
            }
            break;
        }
    }
    fputs("</body>\n</html>\n", f);
    return ferror(f) ? -EIO : 0;
}

/* ---- CSV ---- */

static void csv_field(FILE *f, const char *s, int last)
{
    fputc('"', f);
    /* text Excel would run as a formula gets a leading ' (as cli_csv_field) */
    if (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r') {
        fputc('\'', f);
    }
    for (; *s != '\0'; s++) {
        if (*s == '"') {
            fputc('"', f);
        }
        fputc(*s, f);
    }
    fputc('"', f);
    fputs(last ? "\r\n" : ",", f);
}

int rtable_write_csv(const struct rtable *t, FILE *f)
{
    size_t rows = rtable_rows(t);

    fputs("\xEF\xBB\xBF", f);
    for (int c = 0; c < t->ncols; c++) {
        csv_field(f, t->cols[c], c == t->ncols - 1);
    }
    for (size_t r = 0; r < rows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            csv_field(f, t->cells[r * (size_t)t->ncols + (size_t)c], c == t->ncols - 1);
        }
    }
    return ferror(f) ? -EIO : 0;
}

int rdoc_write_csv_dir(const struct rdoc *d, const char *dir, const char *prefix, char *err,
                       size_t errlen)
{
    int n = 0;

    for (size_t i = 0; i < d->nb; i++) {
        const struct rtable *t = d->b[i].t;
        if (d->b[i].kind != BLK_TABLE || t->csv_name == NULL) {
            continue;
        }
        char *path = wp_xasprintf("%s/%s-%s.csv", dir, prefix, t->csv_name);
        FILE *f = fopen(path, "we");
        int rc = f == NULL ? -errno : rtable_write_csv(t, f);
        if (f != NULL && fclose(f) != 0 && rc == 0) {
            rc = -errno;
        }
        if (rc < 0) {
            snprintf(err, errlen, "%s", path);
            free(path);
            return rc;
        }
        free(path);
        n++;
    }
    return n;
}
