/* SPDX-License-Identifier: Apache-2.0 */
/* The report archive on the collector's HTTP server (docs/API.md). */
#ifndef WP_COLLECTOR_HTTP_REPORTS_H
#define WP_COLLECTOR_HTTP_REPORTS_H

struct coll_server;

/*
 * Register on s->http: GET /api/v1/reports (the archive: kind, period, files,
 * size, mail state; viewer), GET /api/v1/reports/{kind}/{period}/{file} (one
 * file of it; names checked, each component opened with O_NOFOLLOW below the
 * archive directory; viewer) and POST /api/v1/reports/run {kind, period, force}
 * (make a report now; operator). Loop thread only; nothing to free. Returns 0.
 */
int coll_reports_start(struct coll_server *s);

#endif
