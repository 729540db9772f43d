/* SPDX-License-Identifier: Apache-2.0 */
/* Host page data and RRD graphs on the collector's HTTP server (docs/API.md). */
#ifndef WP_COLLECTOR_HTTP_GRAPH_H
#define WP_COLLECTOR_HTTP_GRAPH_H

struct coll_server;

/*
 * Register GET /api/v1/hosts/{host} (agent, latest value of every series field, open
 * incidents) and GET /api/v1/graph (rrd_graph_v, SVG or PNG) on s->http, viewer role.
 * Handlers run on the loop thread; rrd_graph_v runs on libuv's thread pool
 * (http_defer_serial), one graph at a time (librrd's graphing is not thread-safe). Nothing to
 * free. Returns 0.
 */
int coll_graph_start(struct coll_server *s);

#endif
