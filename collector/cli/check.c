/* SPDX-License-Identifier: Apache-2.0 */
/* watchpost check-config: load an agent or collector config or a rules file and report the
 * first error. */
#include <stdio.h>
#include <string.h>

#include "agent_conf.h"
#include "cli.h"
#include "coll_conf.h"
#include "rules.h"
#include "wp/conf.h"

enum conf_kind { KIND_GUESS, KIND_AGENT, KIND_COLLECTOR, KIND_RULES };

static void usage(FILE *f)
{
    fprintf(f, "usage: watchpost check-config FILE [--agent|--collector|--rules]\n"
               "  without a flag the kind is guessed from the top-level keys\n"
               "  (a file with a top-level rules: key is a rules file)\n");
}

/* Guess from the top-level keys; KIND_GUESS when nothing tells (or the YAML is broken). */
static enum conf_kind guess_kind(const char *path)
{
    static const char *const agent_keys[] = {"collectors", "probes", "agent", "spool", "sender"};
    static const char *const coll_keys[] = {"listen", "journal", "rrd", "limits"};
    struct wp_conf_err err;
    struct wp_conf_doc *doc = NULL;
    enum conf_kind kind = KIND_GUESS;

    if (wp_conf_load(path, &err, &doc) < 0) {
        return KIND_GUESS; /* either loader reports the syntax error */
    }
    struct wp_conf_node *root = wp_conf_root(doc);
    if (wp_conf_map_get(doc, root, "rules") != NULL) {
        wp_conf_free(doc);
        return KIND_RULES;
    }
    for (size_t i = 0; i < sizeof(agent_keys) / sizeof(agent_keys[0]); i++) {
        if (wp_conf_map_get(doc, root, agent_keys[i]) != NULL) {
            kind = KIND_AGENT;
            break;
        }
    }
    for (size_t i = 0; kind == KIND_GUESS && i < sizeof(coll_keys) / sizeof(coll_keys[0]); i++) {
        if (wp_conf_map_get(doc, root, coll_keys[i]) != NULL) {
            kind = KIND_COLLECTOR;
        }
    }
    wp_conf_free(doc);
    return kind;
}

static int check_agent(const char *path, struct wp_conf_err *err)
{
    struct agent_conf *c = NULL;
    int rc = agent_conf_load(path, err, &c);

    if (rc < 0) {
        return rc;
    }
    printf("%s: ok (agent config, %zu collector%s, %zu probe%s)\n", path, c->ncollectors,
           c->ncollectors == 1 ? "" : "s", c->nprobes, c->nprobes == 1 ? "" : "s");
    agent_conf_free(c);
    return 0;
}

static int check_collector(const char *path, struct wp_conf_err *err)
{
    struct coll_conf *c = NULL;
    int rc = coll_conf_load(path, err, &c);
    int v6 = 0;

    if (rc < 0) {
        return rc;
    }
    v6 = strchr(c->listen_host, ':') != NULL;
    printf("%s: ok (collector config, listen %s%s%s:%s)\n", path, v6 ? "[" : "", c->listen_host,
           v6 ? "]" : "", c->listen_port);
    coll_conf_free(c);
    return 0;
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static int check_rules(const char *path, struct wp_conf_err *err)
{
    struct rule_set *rs = NULL;
    const char *paths[] = {path};
    int rc = rules_load(paths, 1, err, &rs);

    if (rc < 0) {
        return rc;
    }
    printf("%s: ok (%zu %s, %zu %s, %zu maintenance %s, %zu %s)\n", path, rs->nrules,
           plural(rs->nrules, "rule", "rules"), rs->ngroups, plural(rs->ngroups, "group", "groups"),
           rs->nmaint, plural(rs->nmaint, "window", "windows"), rs->ndeps,
           plural(rs->ndeps, "dependency", "dependencies"));
    rules_free(rs);
    return 0;
}

int cli_check_config(int argc, char **argv)
{
    enum conf_kind kind = KIND_GUESS;
    const char *path = NULL;
    struct wp_conf_err err;
    struct wp_conf_err err2;
    int rc = 0;

    /* argv[0] is "check-config" */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--agent") == 0) {
            kind = KIND_AGENT;
        } else if (strcmp(argv[i], "--collector") == 0) {
            kind = KIND_COLLECTOR;
        } else if (strcmp(argv[i], "--rules") == 0) {
            kind = KIND_RULES;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || path != NULL) {
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    if (kind == KIND_GUESS) {
        kind = guess_kind(path);
    }
    switch (kind) {
    case KIND_AGENT:
        rc = check_agent(path, &err);
        break;
    case KIND_COLLECTOR:
        rc = check_collector(path, &err);
        break;
    case KIND_RULES:
        rc = check_rules(path, &err);
        break;
    case KIND_GUESS:
        /* nothing tells: whichever loads wins; otherwise the collector's complaint */
        rc = check_collector(path, &err);
        if (rc < 0 && check_agent(path, &err2) == 0) {
            rc = 0;
        }
        break;
    }
    if (rc < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}
