/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ami probe's seat sessions: dynamic and realtime queue members (login, logout, pause)
 * and app_agent_pool agents, live and as observed by a resync, queued as seat events for
 * the next sample (see ami.c).
 */
#include "ami_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wp/mem.h"

/* ---- seats ---- */

static void member_free(struct ami_member *mb)
{
    free(mb->queue);
    free(mb->iface);
    free(mb->dev);
    free(mb->name);
    free(mb->reason);
}

void ami_members_clear(struct ami_members *t)
{
    for (size_t i = 0; i < t->n; i++) {
        member_free(&t->v[i]);
    }
    t->n = 0;
}

void ami_members_free(struct ami_members *t)
{
    ami_members_clear(t);
    free(t->v);
    t->v = NULL;
    t->cap = 0;
}

static struct ami_member *member_find(struct ami_members *t, const char *queue, const char *iface)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].queue, queue) == 0 && strcmp(t->v[i].iface, iface) == 0) {
            return &t->v[i];
        }
    }
    return NULL;
}

static struct ami_member *member_add(struct ami_ctx *c, struct ami_members *t, const char *queue,
                                     const char *iface, const char *dev, const char *name)
{
    struct ami_member *mb = NULL;

    if (t->n >= AMI_SEATS_MAX) {
        if (!c->too_many_seats) {
            c->too_many_seats = 1;
            WP_PLOG(c->p, WP_LOG_WARN, "more than %d queue members: the rest are ignored",
                    AMI_SEATS_MAX);
        }
        return NULL;
    }
    if (t->n == t->cap) {
        t->cap = t->cap != 0 ? t->cap * 2 : 32;
        t->v = wp_xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    mb = &t->v[t->n++];
    memset(mb, 0, sizeof(*mb));
    mb->queue = wp_xstrdup(queue);
    mb->iface = wp_xstrdup(iface);
    mb->dev = wp_xstrdup(dev);
    mb->name = wp_xstrdup(name != NULL && name[0] != '\0' ? name : iface);
    return mb;
}

static void member_del(struct ami_members *t, struct ami_member *mb)
{
    member_free(mb);
    *mb = t->v[--t->n];
}

/* The line device of a seat, a copy ("" when none): the state interface when it names a
 * device, else the interface ("PJSIP/1001"; a channel "PJSIP/1004-00000014" stands for its
 * device). Local channels and "hint:" state interfaces name no device. */
static char *seat_device(const char *iface, const char *state_iface)
{
    const char *v[2] = {state_iface, iface};

    for (int i = 0; i < 2; i++) {
        if (v[i] != NULL && strchr(v[i], '/') != NULL && strncasecmp(v[i], "Local/", 6) != 0 &&
            strncasecmp(v[i], "hint:", 5) != 0) {
            return ami_chan_device(v[i]);
        }
    }
    return wp_xstrdup("");
}

/* Queue one seat event for the next sample. */
void ami_seat_event(struct ami_ctx *c, const char *seat, const char *queue, const char *iface,
                    const char *dev, const char *action, const char *reason, int64_t at,
                    int observed, int64_t login_at)
{
    struct ami_seat_ev *e = NULL;

    if (c->nevq >= AMI_EVQ_MAX) {
        if (!c->too_many_seats) {
            c->too_many_seats = 1;
            WP_PLOG(c->p, WP_LOG_WARN,
                    "more than %d seat events between samples: the rest "
                    "are dropped",
                    AMI_EVQ_MAX);
        }
        return;
    }
    if (c->nevq == c->evq_cap) {
        c->evq_cap = c->evq_cap != 0 ? c->evq_cap * 2 : 32;
        c->evq = wp_xrealloc(c->evq, c->evq_cap * sizeof(*c->evq));
    }
    e = &c->evq[c->nevq++];
    e->seat = wp_xstrdup(seat);
    e->queue = wp_xstrdup(queue);
    e->iface = wp_xstrdup(iface != NULL ? iface : "");
    e->dev = wp_xstrdup(dev != NULL ? dev : "");
    e->reason = wp_xstrdup(reason != NULL ? reason : "");
    e->action = action;
    e->at = at;
    e->observed = observed;
    e->login_at = login_at;
}

static void member_event(struct ami_ctx *c, const struct ami_member *mb, const char *action,
                         int64_t at, int observed)
{
    int pause = strcmp(action, "pause") == 0 || strcmp(action, "unpause") == 0;

    ami_seat_event(c, mb->name, mb->queue, mb->iface, mb->dev, action, pause ? mb->reason : NULL,
                   at, observed, 0);
}

void ami_evq_clear(struct ami_ctx *c)
{
    for (size_t i = 0; i < c->nevq; i++) {
        free(c->evq[i].seat);
        free(c->evq[i].queue);
        free(c->evq[i].iface);
        free(c->evq[i].dev);
        free(c->evq[i].reason);
    }
    c->nevq = 0;
}

/* A queue member message: QueueMember (a QueueStatus item: Name, Location) or a
 * QueueMember* event (MemberName, Interface). */
struct member_msg {
    const char *queue, *iface, *state_iface, *name, *reason;
    int is_static;
    int paused; /* -1: not in the message */
    int64_t logintime_s, lastpause_s;
};

static int member_parse(const struct wp_ami_msg *m, struct member_msg *mm)
{
    const char *ms = wp_ami_get(m, "Membership");

    mm->queue = wp_ami_get(m, "Queue");
    mm->iface = wp_ami_get(m, "Interface");
    if (mm->iface == NULL) {
        mm->iface = wp_ami_get(m, "Location");
    }
    mm->state_iface = wp_ami_get(m, "StateInterface");
    mm->name = wp_ami_get(m, "MemberName");
    if (mm->name == NULL) {
        mm->name = wp_ami_get(m, "Name");
    }
    mm->reason = wp_ami_get(m, "PausedReason");
    mm->is_static = ms != NULL && strcasecmp(ms, "static") == 0;
    mm->paused = (int)ami_get_int(m, "Paused", -1);
    if (mm->paused > 1) {
        mm->paused = 1;
    }
    mm->logintime_s = ami_get_int(m, "LoginTime", 0);
    mm->lastpause_s = ami_get_int(m, "LastPause", 0);
    if (mm->logintime_s < 0 || mm->logintime_s > 100000000000LL) {
        mm->logintime_s = 0;
    }
    if (mm->lastpause_s < 0 || mm->lastpause_s > 100000000000LL) {
        mm->lastpause_s = 0;
    }
    if (mm->queue == NULL || mm->queue[0] == '\0' || mm->iface == NULL || mm->iface[0] == '\0' ||
        strlen(mm->queue) > AMI_DEV_MAX || strlen(mm->iface) > AMI_DEV_MAX ||
        (mm->name != NULL && strlen(mm->name) > AMI_DEV_MAX)) {
        return -1;
    }
    return 0;
}

/* A QueueMember* event. Live, it becomes seat events; during a resync it updates the pending
 * members (the differences go out when the resync is applied). */
void ami_on_member(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m)
{
    struct member_msg mm;
    int live = c->phase == PH_LIVE;
    struct ami_members *t = live ? &c->members : &c->sync.members;
    struct ami_member *mb = NULL;
    int64_t at = ami_event_ms(m);
    int added = strcasecmp(ev, "QueueMemberAdded") == 0;

    if (member_parse(m, &mm) < 0 || mm.is_static) {
        return;
    }
    mb = member_find(t, mm.queue, mm.iface);
    if (strcasecmp(ev, "QueueMemberRemoved") == 0) {
        if (mb != NULL) {
            if (live) {
                member_event(c, mb, "logout", at, 0);
            }
            member_del(t, mb);
        }
        return;
    }
    if (mb == NULL) {
        char *dev = seat_device(mm.iface, mm.state_iface);
        mb = member_add(c, t, mm.queue, mm.iface, dev, mm.name);
        free(dev);
        if (mb == NULL) {
            return;
        }
        mb->logintime_s = mm.logintime_s;
        /* LoginTime rather than the event time: a QueueStatus after a reconnect names it */
        mb->login_ms = mm.logintime_s > 0 ? mm.logintime_s * 1000 : at;
        mb->login_seen = added;
        if (live) {
            member_event(c, mb, "login", mb->login_ms, !added);
        }
    }
    if (mm.paused >= 0 && mm.paused != mb->paused) {
        mb->paused = mm.paused;
        ami_set_str(&mb->reason, mm.reason != NULL ? mm.reason : "");
        mb->pause_ms = at;
        mb->pause_seen = 1;
        if (live) {
            member_event(c, mb, mb->paused ? "pause" : "unpause", at, 0);
        }
    }
}

/* A QueueStatus QueueMember item: the member as the PBX has it now (pending). */
void ami_on_member_item(struct ami_ctx *c, const struct wp_ami_msg *m)
{
    struct member_msg mm;
    struct ami_member *mb = NULL;

    if (member_parse(m, &mm) < 0 || mm.is_static) {
        return;
    }
    mb = member_find(&c->sync.members, mm.queue, mm.iface);
    if (mb == NULL) {
        char *dev = seat_device(mm.iface, mm.state_iface);
        mb = member_add(c, &c->sync.members, mm.queue, mm.iface, dev, mm.name);
        free(dev);
        if (mb == NULL) {
            return;
        }
        mb->logintime_s = mm.logintime_s;
        mb->login_ms = mm.logintime_s * 1000; /* 0: the time the link came back */
    }
    if (mm.paused >= 0 && mm.paused != mb->paused) {
        mb->paused = mm.paused;
        ami_set_str(&mb->reason, mm.reason != NULL ? mm.reason : "");
        mb->pause_ms = mm.paused && mm.lastpause_s > 0 ? mm.lastpause_s * 1000 : 0;
        mb->pause_seen = 0;
    }
}

/* Apply the QueueStatus members: the differences with the known ones become seat events. */
void ami_members_apply(struct ami_ctx *c)
{
    struct ami_members *now = &c->sync.members;
    int64_t back = c->link_up_ms;

    for (size_t i = 0; i < c->members.n;) {
        struct ami_member *k = &c->members.v[i];
        struct ami_member *p = member_find(now, k->queue, k->iface);
        if (p == NULL) {
            member_event(c, k, "logout", back, 1); /* gone during the outage */
            member_del(&c->members, k);
            continue;
        }
        i++;
    }
    for (size_t i = 0; i < now->n; i++) {
        struct ami_member *p = &now->v[i];
        struct ami_member *k = member_find(&c->members, p->queue, p->iface);
        if (p->login_ms <= 0) {
            p->login_ms = back;
        }
        if (p->paused && p->pause_ms <= 0) {
            p->pause_ms = back;
        }
        if (k != NULL && p->logintime_s > 0 && k->logintime_s > 0 &&
            p->logintime_s != k->logintime_s) {
            /* logged out and in again during the outage */
            member_event(c, k, "logout", p->login_ms < back ? p->login_ms : back, 1);
            member_del(&c->members, k);
            k = NULL;
        }
        if (k == NULL) {
            k = member_add(c, &c->members, p->queue, p->iface, p->dev, p->name);
            if (k == NULL) {
                continue;
            }
            k->logintime_s = p->logintime_s;
            k->login_ms = p->login_ms;
            k->login_seen = p->login_seen;
            member_event(c, k, "login", k->login_ms, !p->login_seen);
        }
        if (k->logintime_s == 0) {
            k->logintime_s = p->logintime_s;
        }
        if (p->paused != k->paused) {
            k->paused = p->paused;
            ami_set_str(&k->reason, p->reason != NULL ? p->reason : "");
            k->pause_ms = p->paused ? p->pause_ms : back;
            member_event(c, k, k->paused ? "pause" : "unpause",
                         k->paused ? p->pause_ms : (p->pause_seen ? p->pause_ms : back),
                         !p->pause_seen);
        }
    }
    ami_members_clear(now);
}

/* AgentLogin / AgentLogoff (app_agent_pool): sessions with no queue. */
void ami_on_agent(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m)
{
    const char *agent = wp_ami_get(m, "Agent");
    const char *chan = wp_ami_get(m, "Channel");
    int64_t at = ami_event_ms(m);
    char buf[32];

    if (agent == NULL || agent[0] == '\0' || strlen(agent) > AMI_DEV_MAX) {
        return;
    }
    if (strcasecmp(ev, "AgentLogin") == 0) {
        if (ami_kv_get(&c->agents, agent) != NULL) {
            return; /* already logged in */
        }
        snprintf(buf, sizeof(buf), "%lld", (long long)at);
        if (!ami_kv_set(&c->agents, agent, buf, AMI_SEATS_MAX)) {
            return;
        }
        char *dev = seat_device(chan, NULL);
        ami_seat_event(c, agent, "", chan, dev, "login", NULL, at, 0, 0);
        free(dev);
        return;
    }
    /* AgentLogoff: Logintime is the session length in seconds */
    int64_t secs = ami_get_int(m, "Logintime", -1);
    int64_t login_at = ami_kv_get(&c->agents, agent) != NULL
                           ? strtoll(ami_kv_get(&c->agents, agent), NULL, 10)
                           : (secs >= 0 && secs < 100000000 ? at - secs * 1000 : 0);
    char *dev = seat_device(chan, NULL);
    ami_seat_event(c, agent, "", chan, dev, "logout", NULL, at, 0, login_at);
    free(dev);
    ami_kv_del(&c->agents, agent);
}

/* The queued seat events, as wp_sink_event records (see the file comment). */
void ami_emit_seats(struct ami_ctx *c, struct wp_sink *out)
{
    for (size_t i = 0; i < c->nevq; i++) {
        const struct ami_seat_ev *e = &c->evq[i];
        char at[24], login_at[24], text[600];
        const char *f[19];
        size_t n = 0;

        snprintf(at, sizeof(at), "%lld", (long long)e->at);
        snprintf(login_at, sizeof(login_at), "%lld", (long long)e->login_at);
        snprintf(text, sizeof(text), "%.255s %s%s%.255s%s%s%.64s", e->seat, e->action,
                 e->queue[0] != '\0' ? " queue " : "", e->queue, e->observed ? " (observed)" : "",
                 e->reason[0] != '\0' ? ": " : "", e->reason);
        f[n++] = "seat";
        f[n++] = e->seat;
        f[n++] = "queue";
        f[n++] = e->queue;
        f[n++] = "interface";
        f[n++] = e->iface;
        if (e->dev[0] != '\0') {
            f[n++] = "device";
            f[n++] = e->dev;
        }
        f[n++] = "action";
        f[n++] = e->action;
        f[n++] = "reason";
        f[n++] = e->reason;
        f[n++] = "at";
        f[n++] = at;
        f[n++] = "observed";
        f[n++] = e->observed ? "1" : "0";
        if (e->login_at > 0) {
            f[n++] = "login_at";
            f[n++] = login_at;
        }
        f[n] = NULL;
        wp_sink_event(out, c->link_obj, "seat", WP_SEV_INFO, text, f);
    }
    ami_evq_clear(c);
}
