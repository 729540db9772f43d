/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Report documents (report_doc.c): a report as a list of blocks (headings, paragraphs,
 * preformatted text, blank lines to fill in, tables of text cells), written either as one
 * self-contained HTML file (inline styles, no external resource, every text escaped) or as
 * CSV files, one per table, in UTF-8 with a byte order mark and CRLF line ends (Excel).
 * The writers add nothing the caller did not put in (no clock, no host name), so the same
 * document gives the same bytes. Single-threaded; the caller owns the document.
 */
#ifndef WP_COLLECTOR_REPORT_DOC_H
#define WP_COLLECTOR_REPORT_DOC_H

#include <stddef.h>
#include <stdio.h>

struct rdoc;
struct rtable;

/* A new document with its title and language tag (the HTML lang attribute, e.g. "en",
 * "zh-CN"); free it with rdoc_free(). */
struct rdoc *rdoc_new(const char *title, const char *lang);
void rdoc_free(struct rdoc *d);

/* A section heading (level 2) / sub-heading (level 3). */
void rdoc_heading(struct rdoc *d, int level, const char *text);
/* A paragraph; printf format. */
void rdoc_para(struct rdoc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Text kept as is (line breaks kept): notes, runbooks, values. */
void rdoc_pre(struct rdoc *d, const char *text);
/* n empty ruled lines for the team to complete by hand. */
void rdoc_blank(struct rdoc *d, int n);

/* A graph: svg (markup from librrd, written into the HTML as is, so it must come from a
 * trusted generator) and the same as png (for the PDF); either may be NULL. Copied. */
void rdoc_image(struct rdoc *d, const char *svg, size_t svg_len, const void *png, size_t png_len);

/* A table with ncols columns. csv_name ([a-z0-9_]) names its CSV file; NULL: HTML only.
 * cols are copied. The table is owned by d. */
struct rtable *rdoc_table(struct rdoc *d, const char *csv_name, const char *caption, int ncols,
                          const char *const *cols);
/* Append one cell; rows wrap every ncols cells. printf format. */
void rtable_cell(struct rtable *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Number of complete rows so far. */
size_t rtable_rows(const struct rtable *t);
/* What an empty table shows in HTML (default "-"). */
void rdoc_set_empty_text(struct rdoc *d, const char *text);

/* Write the whole document as HTML to f. 0 or -errno. */
int rdoc_write_html(const struct rdoc *d, FILE *f);
/* Write one table as CSV (BOM, header row, CRLF) to f. 0 or -errno. */
int rtable_write_csv(const struct rtable *t, FILE *f);
/* Every table with a csv_name as DIR/PREFIX-NAME.csv. Returns the number of files written
 * or -errno; the name of the file that failed goes to err. */
int rdoc_write_csv_dir(const struct rdoc *d, const char *dir, const char *prefix, char *err,
                       size_t errlen);

/* The document's date (ISO 8601, e.g. "2026-11-23T00:00:00+08:00"), stored as the PDF's
 * creation date so that the PDF, too, is the same on every run. Default
 * "2000-01-01T00:00:00Z". */
void rdoc_set_date(struct rdoc *d, const char *iso);

/* PDF: A4 pages with the same blocks, tables split across pages with their header repeated
 * (report_pdf.c, built when pangocairo is found: WP_HAVE_PDF). 0, or <0 with err. */
int rdoc_write_pdf(const struct rdoc *d, const char *path, char *err, size_t errlen);

/* Read access for other writers (report_pdf.c). */
enum rdoc_kind { RDOC_H2, RDOC_H3, RDOC_PARA, RDOC_PRE, RDOC_BLANK, RDOC_TABLE, RDOC_IMAGE };
struct rdoc_block {
    enum rdoc_kind kind;
    const char *text; /* headings, paragraphs, pre; the SVG of an image (or NULL) */
    const void *png;  /* an image's PNG (or NULL) */
    size_t png_len;
    int n; /* blank lines */
    const struct rtable *table;
};
const char *rdoc_title(const struct rdoc *d);
const char *rdoc_date(const struct rdoc *d);
const char *rdoc_empty_text(const struct rdoc *d);
size_t rdoc_nblocks(const struct rdoc *d);
void rdoc_block_at(const struct rdoc *d, size_t i, struct rdoc_block *out);
int rtable_ncols(const struct rtable *t);
const char *rtable_caption(const struct rtable *t);
const char *rtable_col(const struct rtable *t, int c);
const char *rtable_cell_at(const struct rtable *t, size_t r, int c);

/* HTML-escape s onto f (& < > " ' and control characters other than tab and newline). */
void rdoc_html_escape(FILE *f, const char *s);

#endif
