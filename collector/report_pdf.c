/* SPDX-License-Identifier: Apache-2.0 */
/* Report documents as PDF, rendered natively with cairo and pango (no browser): A4 pages,
 * headings, paragraphs, tables that break across pages with their header repeated, a page
 * number in the footer. The creation date comes from the document, so reruns are identical. */
#include "report_doc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo-pdf.h>
#include <cairo.h>
#include <pango/pangocairo.h>

#include "wp/mem.h"

#define PAGE_W   595.28 /* A4 in points */
#define PAGE_H   841.89
#define MARGIN   40.0
#define BODY_W   (PAGE_W - 2 * MARGIN)
#define BOTTOM   (PAGE_H - MARGIN - 14.0) /* room for the footer */
#define CELL_PAD 3.0
#define FONT     "Noto Sans, DejaVu Sans, Droid Sans Fallback"

struct pdf {
    cairo_t *cr;
    PangoFontMap *fm; /* our own, released at the end (the default one lives forever) */
    PangoContext *ctx;
    const struct rdoc *d;
    double y;
    int page;
};

static PangoLayout *layout(struct pdf *p, const char *text, double size, int bold, int mono,
                           double width)
{
    PangoLayout *l = pango_layout_new(p->ctx);
    char font[128];

    snprintf(font, sizeof(font), "%s%s %.1f", mono ? "DejaVu Sans Mono, " : "", FONT, size);
    PangoFontDescription *fd = pango_font_description_from_string(font);
    if (bold) {
        pango_font_description_set_weight(fd, PANGO_WEIGHT_BOLD);
    }
    pango_layout_set_font_description(l, fd);
    pango_font_description_free(fd);
    if (width > 0) {
        pango_layout_set_width(l, (int)(width * PANGO_SCALE));
        pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
    }
    pango_layout_set_text(l, text, -1);
    return l;
}

static double height_of(PangoLayout *l)
{
    int w = 0, h = 0;

    pango_layout_get_size(l, &w, &h);
    return (double)h / PANGO_SCALE;
}

static double width_of(PangoLayout *l)
{
    int w = 0, h = 0;

    pango_layout_get_size(l, &w, &h);
    return (double)w / PANGO_SCALE;
}

static void footer(struct pdf *p)
{
    char text[512];

    snprintf(text, sizeof(text), "%s  -  %d", rdoc_title(p->d), p->page);
    PangoLayout *l = layout(p, text, 7.5, 0, 0, BODY_W);
    pango_layout_set_alignment(l, PANGO_ALIGN_RIGHT);
    cairo_set_source_rgb(p->cr, 0.4, 0.4, 0.4);
    cairo_move_to(p->cr, MARGIN, PAGE_H - MARGIN);
    pango_cairo_show_layout(p->cr, l);
    g_object_unref(l);
}

static void new_page(struct pdf *p)
{
    footer(p);
    cairo_show_page(p->cr);
    p->page++;
    p->y = MARGIN;
}

/* Make room for h points, starting a page when they do not fit (unless at its top). */
static void need(struct pdf *p, double h)
{
    if (p->y + h > BOTTOM && p->y > MARGIN) {
        new_page(p);
    }
}

static void text_block(struct pdf *p, const char *text, double size, int bold, int mono, double r,
                       double g, double b, double before, double after)
{
    PangoLayout *l = layout(p, text, size, bold, mono, BODY_W);
    double h = height_of(l);

    need(p, before + h);
    p->y += before;
    cairo_set_source_rgb(p->cr, r, g, b);
    cairo_move_to(p->cr, MARGIN, p->y);
    pango_cairo_show_layout(p->cr, l);
    p->y += h + after;
    g_object_unref(l);
}

/* ---- tables ---- */

static void table_widths(struct pdf *p, const struct rtable *t, size_t rows, double *w)
{
    int nc = rtable_ncols(t);
    double total = 0;

    for (int c = 0; c < nc; c++) {
        PangoLayout *l = layout(p, rtable_col(t, c), 7.5, 1, 0, -1);
        w[c] = width_of(l);
        g_object_unref(l);
        for (size_t r = 0; r < rows; r++) {
            l = layout(p, rtable_cell_at(t, r, c), 7.5, 0, 0, -1);
            double x = width_of(l);
            g_object_unref(l);
            if (x > w[c]) {
                w[c] = x;
            }
        }
        w[c] += 2 * CELL_PAD;
        if (w[c] > BODY_W * 0.45) {
            w[c] = BODY_W * 0.45; /* long text wraps */
        }
        total += w[c];
    }
    if (total > BODY_W) {
        /* shrink the wide columns first: each keeps at least an even share */
        double even = BODY_W / nc, over = 0, wide = 0;
        for (int c = 0; c < nc; c++) {
            if (w[c] > even) {
                wide += w[c] - even;
            }
        }
        over = total - BODY_W;
        for (int c = 0; c < nc; c++) {
            if (w[c] > even) {
                w[c] -= over * (w[c] - even) / wide;
            }
        }
    }
}

/* One row: cells of text (header when hdr). Returns its height; draws when draw. */
static double table_row(struct pdf *p, const struct rtable *t, size_t r, int hdr, const double *w,
                        int draw)
{
    int nc = rtable_ncols(t);
    double h = 0, x = MARGIN;
    PangoLayout *ls[64];

    for (int c = 0; c < nc && c < 64; c++) {
        const char *s = hdr ? rtable_col(t, c) : rtable_cell_at(t, r, c);
        ls[c] = layout(p, s, 7.5, hdr, 0, w[c] - 2 * CELL_PAD);
        double ch = height_of(ls[c]) + 2 * CELL_PAD;
        if (ch > h) {
            h = ch;
        }
    }
    for (int c = 0; c < nc && c < 64; c++) {
        if (draw) {
            if (hdr) {
                cairo_set_source_rgb(p->cr, 0.91, 0.93, 0.96);
                cairo_rectangle(p->cr, x, p->y, w[c], h);
                cairo_fill(p->cr);
            }
            cairo_set_source_rgb(p->cr, 0.72, 0.76, 0.8);
            cairo_set_line_width(p->cr, 0.5);
            cairo_rectangle(p->cr, x, p->y, w[c], h);
            cairo_stroke(p->cr);
            cairo_set_source_rgb(p->cr, 0.12, 0.14, 0.16);
            cairo_move_to(p->cr, x + CELL_PAD, p->y + CELL_PAD);
            pango_cairo_show_layout(p->cr, ls[c]);
        }
        x += w[c];
        g_object_unref(ls[c]);
    }
    return h;
}

/* The caption, header and first row of a table: what must fit on the page it starts on. */
static double table_lead(struct pdf *p, const struct rtable *t)
{
    int nc = rtable_ncols(t);
    size_t rows = rtable_rows(t);
    double w[64], cap = 0;

    if (nc > 64) {
        return 0;
    }
    table_widths(p, t, rows > 0 ? 1 : 0, w);
    if (rtable_caption(t)[0] != '\0') {
        PangoLayout *l = layout(p, rtable_caption(t), 9, 1, 0, BODY_W);
        cap = height_of(l) + 8;
        g_object_unref(l);
    }
    return cap + table_row(p, t, 0, 1, w, 0) + (rows > 0 ? table_row(p, t, 0, 0, w, 0) : 14);
}

static double png_height(const void *png, size_t len);

/* What the block after a heading needs on the heading's page (0: nothing special). */
static double lead_of(struct pdf *p, size_t i)
{
    struct rdoc_block b;

    if (i >= rdoc_nblocks(p->d)) {
        return 0;
    }
    rdoc_block_at(p->d, i, &b);
    if (b.kind == RDOC_TABLE) {
        return table_lead(p, b.table);
    }
    if (b.kind == RDOC_IMAGE && b.png != NULL) {
        return png_height(b.png, b.png_len);
    }
    if (b.kind == RDOC_H3) {
        return 20 + lead_of(p, i + 1);
    }
    return 30;
}

static void table(struct pdf *p, const struct rtable *t)
{
    int nc = rtable_ncols(t);
    size_t rows = 0;
    double w[64];

    if (nc > 64) {
        return;
    }
    /* rtable_rows() is the complete rows */
    rows = rtable_rows(t);
    table_widths(p, t, rows, w);
    double hh = table_row(p, t, 0, 1, w, 0);
    double first = rows > 0 ? table_row(p, t, 0, 0, w, 0) : 14;
    double cap = 0;
    if (rtable_caption(t)[0] != '\0') {
        PangoLayout *l = layout(p, rtable_caption(t), 9, 1, 0, BODY_W);
        cap = height_of(l) + 8;
        g_object_unref(l);
    }
    need(p, cap + hh + first); /* the caption, the header and a row stay together */
    if (cap > 0) {
        text_block(p, rtable_caption(t), 9, 1, 0, 0.12, 0.14, 0.16, 6, 2);
    }
    p->y += table_row(p, t, 0, 1, w, 1);
    for (size_t r = 0; r < rows; r++) {
        double h = table_row(p, t, r, 0, w, 0);
        if (p->y + h > BOTTOM) {
            new_page(p);
            p->y += table_row(p, t, 0, 1, w, 1);
        }
        p->y += table_row(p, t, r, 0, w, 1);
    }
    if (rows == 0) {
        text_block(p, rdoc_empty_text(p->d), 7.5, 0, 0, 0.42, 0.45, 0.49, 2, 0);
    }
    p->y += 8;
}

struct membuf {
    const unsigned char *p;
    size_t len, off;
};

static cairo_status_t png_read(void *closure, unsigned char *data, unsigned int length)
{
    struct membuf *m = closure;

    if (m->len - m->off < length) {
        return CAIRO_STATUS_READ_ERROR;
    }
    memcpy(data, m->p + m->off, length);
    m->off += length;
    return CAIRO_STATUS_SUCCESS;
}

static double png_height(const void *png, size_t len)
{
    struct membuf m = {png, len, 0};
    cairo_surface_t *img = cairo_image_surface_create_from_png_stream(png_read, &m);
    double h = 0;

    if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
        double w = cairo_image_surface_get_width(img);
        h = cairo_image_surface_get_height(img) * (w > BODY_W ? BODY_W / w : 1.0) + 6;
    }
    cairo_surface_destroy(img);
    return h;
}

/* A PNG scaled to the body width at most. */
static void image(struct pdf *p, const void *png, size_t len)
{
    struct membuf m = {png, len, 0};
    cairo_surface_t *img = cairo_image_surface_create_from_png_stream(png_read, &m);

    if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
        double w = cairo_image_surface_get_width(img), h = cairo_image_surface_get_height(img);
        double scale = w > BODY_W ? BODY_W / w : 1.0;
        need(p, h * scale + 6);
        cairo_save(p->cr);
        cairo_translate(p->cr, MARGIN, p->y);
        cairo_scale(p->cr, scale, scale);
        cairo_set_source_surface(p->cr, img, 0, 0);
        cairo_paint(p->cr);
        cairo_restore(p->cr);
        p->y += h * scale + 6;
    }
    cairo_surface_destroy(img);
}

int rdoc_write_pdf(const struct rdoc *d, const char *path, char *err, size_t errlen)
{
    struct pdf p;
    cairo_surface_t *s = cairo_pdf_surface_create(path, PAGE_W, PAGE_H);
    int rc = 0;

    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "%s: %s", path, cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        return -EIO;
    }
    /* fixed metadata: cairo would otherwise stamp the current time */
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, rdoc_title(d));
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "watchpost report");
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATE_DATE, rdoc_date(d));
    memset(&p, 0, sizeof(p));
    p.cr = cairo_create(s);
    p.fm = pango_cairo_font_map_new();
    p.ctx = pango_font_map_create_context(p.fm);
    pango_cairo_update_context(p.cr, p.ctx);
    p.d = d;
    p.y = MARGIN;
    p.page = 1;
    text_block(&p, rdoc_title(d), 15, 1, 0, 0.04, 0.33, 0.58, 0, 8);
    for (size_t i = 0; i < rdoc_nblocks(d); i++) {
        struct rdoc_block b;
        rdoc_block_at(d, i, &b);
        switch (b.kind) {
        case RDOC_H2:
            need(&p, 30 + lead_of(&p, i + 1)); /* a heading stays with what follows */
            text_block(&p, b.text, 12, 1, 0, 0.04, 0.33, 0.58, 10, 4);
            break;
        case RDOC_H3:
            need(&p, 20 + lead_of(&p, i + 1));
            text_block(&p, b.text, 10, 1, 0, 0.12, 0.14, 0.16, 6, 3);
            break;
        case RDOC_PARA:
            text_block(&p, b.text, 8.5, 0, 0, 0.12, 0.14, 0.16, 2, 3);
            break;
        case RDOC_PRE:
            text_block(&p, b.text, 7.5, 0, 1, 0.2, 0.2, 0.2, 2, 4);
            break;
        case RDOC_BLANK:
            for (int n = 0; n < b.n; n++) {
                need(&p, 20);
                p.y += 20;
                cairo_set_source_rgb(p.cr, 0.55, 0.58, 0.62);
                cairo_set_line_width(p.cr, 0.5);
                cairo_move_to(p.cr, MARGIN, p.y);
                cairo_line_to(p.cr, MARGIN + BODY_W, p.y);
                cairo_stroke(p.cr);
            }
            p.y += 6;
            break;
        case RDOC_TABLE:
            table(&p, b.table);
            break;
        case RDOC_IMAGE:
            if (b.png != NULL) {
                image(&p, b.png, b.png_len);
            }
            break;
        }
    }
    footer(&p);
    cairo_show_page(p.cr);
    g_object_unref(p.ctx);
    g_object_unref(p.fm);
    cairo_destroy(p.cr);
    cairo_surface_finish(s);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "%s: %s", path, cairo_status_to_string(cairo_surface_status(s)));
        rc = -EIO;
    }
    cairo_surface_destroy(s);
    return rc;
}
