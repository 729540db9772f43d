// SPDX-License-Identifier: Apache-2.0
// Strings of the dashboard in English and Simplified Chinese. Every text the pages show
// comes from here: t("key", {name: value}) fills {name}. The language is kept per user in
// localStorage ("wp.lang.USER", and "wp.lang" for the login page) and applied without reload.

export const LANGS = { en: "English", "zh-CN": "简体中文" };

const S = {
  en: {
    title: "Watchpost",
    "login.heading": "Sign in",
    "login.user": "User",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.failed": "Wrong user name or password.",
    "login.limited": "Too many failed logins; try again in {s} s.",
    "login.error": "Login failed ({code}).",
    "nav.overview": "Overview",
    "nav.incidents": "Incidents",
    "nav.telephony": "Telephony",
    "nav.outbox": "Outbox",
    "nav.logout": "Log out",
    "nav.language": "Language",
    "live.on": "Live",
    "live.off": "Reconnecting…",
    "role.viewer": "viewer",
    "role.operator": "operator",
    "role.admin": "admin",
    "ov.hosts": "Hosts",
    "ov.incidents": "Open incidents",
    "ov.lines": "PBX lines",
    "ov.disconnected": "Agents disconnected",
    "ov.none_disconnected": "All agents connected",
    "ov.no_hosts": "No agent has connected yet.",
    "ov.no_lines": "No lines reported.",
    "ov.next_deadline": "next deadline",
    "ov.recent": "Active incidents",
    "ov.no_incidents": "No open incidents.",
    "ov.ok": "OK",
    "ov.silent": "silent",
    "ov.open_n": "{n} open",
    "ov.last_seen": "last seen {ago}",
    "prio.1": "P1",
    "prio.2": "P2",
    "prio.3": "P3",
    "prio.4": "P4",
    "status.open": "open",
    "status.acknowledged": "acknowledged",
    "status.resolved": "resolved",
    "status.closed": "closed",
    "status.active": "active",
    "status.all": "all",
    "inc.filter.status": "Status",
    "inc.filter.priority": "Priority",
    "inc.filter.any": "any",
    "inc.filter.search": "Search host or summary",
    "inc.col.id": "#",
    "inc.col.priority": "Pri",
    "inc.col.status": "Status",
    "inc.col.host": "Host",
    "inc.col.summary": "Summary",
    "inc.col.opened": "Opened",
    "inc.col.left": "Time left",
    "inc.col.acked_by": "Acknowledged by",
    "inc.empty": "No incidents match.",
    "inc.back": "← All incidents",
    "inc.detail": "Incident {id}",
    "inc.rule": "Rule",
    "inc.category": "Category",
    "inc.impact_urgency": "Impact / urgency",
    "inc.response_due": "Response due",
    "inc.resolve_due": "Resolve due",
    "inc.escalation": "Escalation level",
    "inc.flapping": "flapping",
    "inc.suppressed": "suppressed",
    "inc.reopened": "reopened {n}×",
    "inc.description": "Description",
    "inc.runbook": "Runbook",
    "inc.no_runbook": "No runbook for this rule.",
    "inc.values": "Values",
    "inc.no_values": "No values recorded.",
    "inc.timeline": "Timeline",
    "inc.actions": "Actions",
    "inc.note": "Note",
    "inc.ack": "Acknowledge",
    "inc.resolve": "Resolve",
    "inc.comment": "Comment",
    "inc.note_needed": "Write a note first.",
    "inc.done": "Done.",
    "inc.failed": "Failed: {err}",
    "inc.viewer_only": "Your role is viewer: you can look but not act.",
    "inc.overdue": "overdue {t}",
    "tel.summary": "Lines by state",
    "tel.empty": "No lines reported by any agent.",
    "tel.filter.host": "Host",
    "tel.filter.all": "all",
    "tel.problems": "{n} lines need attention",
    "line.idle": "idle",
    "line.ringing": "ringing",
    "line.in_use": "in use",
    "line.on_hold": "on hold",
    "line.busy": "busy",
    "line.unavailable": "unavailable",
    "line.out_of_service": "out of service",
    "line.blocked": "blocked",
    "line.unknown": "unknown",
    "ob.state": "State",
    "ob.col.id": "#",
    "ob.col.created": "Created",
    "ob.col.dest": "Destination",
    "ob.col.event": "Event",
    "ob.col.incident": "Incident",
    "ob.col.attempts": "Attempts",
    "ob.col.error": "Last error",
    "ob.retry": "Retry",
    "ob.retried": "Message {id} queued again.",
    "ob.empty": "No messages in this state.",
    "ob.no_notify": "Notifications are not configured on this collector.",
    "obstate.dead": "dead",
    "obstate.queued": "queued",
    "obstate.sent": "sent",
    "obstate.coalesced": "coalesced",
    "obstate.skipped": "skipped",
    "obstate.digested": "digested",
    "time.s": "{n}s",
    "time.m": "{n}m",
    "time.h": "{h}h {m}m",
    "time.d": "{d}d {h}h",
    "time.ago": "{t} ago",
    "err.load": "Could not load: {err}",
    "loading": "Loading…",
    "tl.opened": "opened",
    "tl.reopened": "reopened",
    "tl.acknowledged": "acknowledged",
    "tl.comment": "comment",
    "tl.escalated": "escalated",
    "tl.resolved": "resolved",
    "tl.closed": "closed",
    "tl.suppressed": "suppressed",
    "tl.flapping": "flapping",
    "tl.value update": "value update",
    "tl.notify sent": "notification sent",
    "tl.notify retry": "notification retry",
    "tl.notify dead": "notification failed",
    "tl.notify requeued": "notification requeued",
    "tl.notify coalesced": "notification coalesced",
    "tl.notify digested": "notification digested",
    "tl.notify skipped": "notification skipped",
    "tl.notification sent": "notification sent",
  },
  "zh-CN": {
    title: "Watchpost 监控",
    "login.heading": "登录",
    "login.user": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.failed": "用户名或密码错误。",
    "login.limited": "登录失败次数过多，请 {s} 秒后再试。",
    "login.error": "登录失败（{code}）。",
    "nav.overview": "总览",
    "nav.incidents": "事件",
    "nav.telephony": "话务墙",
    "nav.outbox": "发件箱",
    "nav.logout": "退出",
    "nav.language": "语言",
    "live.on": "实时",
    "live.off": "正在重连…",
    "role.viewer": "只读",
    "role.operator": "值班员",
    "role.admin": "管理员",
    "ov.hosts": "主机",
    "ov.incidents": "未关闭事件",
    "ov.lines": "PBX 线路",
    "ov.disconnected": "断开的代理",
    "ov.none_disconnected": "所有代理均已连接",
    "ov.no_hosts": "尚无代理连接。",
    "ov.no_lines": "没有线路数据。",
    "ov.next_deadline": "最近期限",
    "ov.recent": "活动事件",
    "ov.no_incidents": "没有未关闭事件。",
    "ov.ok": "正常",
    "ov.silent": "无数据",
    "ov.open_n": "{n} 个未关闭",
    "ov.last_seen": "最后在线 {ago}",
    "prio.1": "P1",
    "prio.2": "P2",
    "prio.3": "P3",
    "prio.4": "P4",
    "status.open": "未处理",
    "status.acknowledged": "已确认",
    "status.resolved": "已解决",
    "status.closed": "已关闭",
    "status.active": "活动",
    "status.all": "全部",
    "inc.filter.status": "状态",
    "inc.filter.priority": "优先级",
    "inc.filter.any": "任意",
    "inc.filter.search": "搜索主机或摘要",
    "inc.col.id": "编号",
    "inc.col.priority": "优先级",
    "inc.col.status": "状态",
    "inc.col.host": "主机",
    "inc.col.summary": "摘要",
    "inc.col.opened": "开始时间",
    "inc.col.left": "剩余时间",
    "inc.col.acked_by": "确认人",
    "inc.empty": "没有符合条件的事件。",
    "inc.back": "← 全部事件",
    "inc.detail": "事件 {id}",
    "inc.rule": "规则",
    "inc.category": "类别",
    "inc.impact_urgency": "影响 / 紧急程度",
    "inc.response_due": "响应期限",
    "inc.resolve_due": "解决期限",
    "inc.escalation": "升级级别",
    "inc.flapping": "抖动",
    "inc.suppressed": "已抑制",
    "inc.reopened": "重新打开 {n} 次",
    "inc.description": "描述",
    "inc.runbook": "处理手册",
    "inc.no_runbook": "此规则没有处理手册。",
    "inc.values": "触发数值",
    "inc.no_values": "没有记录数值。",
    "inc.timeline": "时间线",
    "inc.actions": "操作",
    "inc.note": "备注",
    "inc.ack": "确认",
    "inc.resolve": "解决",
    "inc.comment": "评论",
    "inc.note_needed": "请先填写备注。",
    "inc.done": "已完成。",
    "inc.failed": "失败：{err}",
    "inc.viewer_only": "您的角色为只读：可以查看，不能操作。",
    "inc.overdue": "已超时 {t}",
    "tel.summary": "各状态线路数",
    "tel.empty": "没有代理上报线路。",
    "tel.filter.host": "主机",
    "tel.filter.all": "全部",
    "tel.problems": "{n} 条线路需要关注",
    "line.idle": "空闲",
    "line.ringing": "振铃",
    "line.in_use": "通话中",
    "line.on_hold": "保持",
    "line.busy": "忙",
    "line.unavailable": "不可用",
    "line.out_of_service": "停止服务",
    "line.blocked": "已阻塞",
    "line.unknown": "未知",
    "ob.state": "状态",
    "ob.col.id": "编号",
    "ob.col.created": "创建时间",
    "ob.col.dest": "目标",
    "ob.col.event": "事件",
    "ob.col.incident": "事件编号",
    "ob.col.attempts": "尝试次数",
    "ob.col.error": "最后错误",
    "ob.retry": "重试",
    "ob.retried": "消息 {id} 已重新排队。",
    "ob.empty": "此状态下没有消息。",
    "ob.no_notify": "此采集器未配置通知。",
    "obstate.dead": "失败",
    "obstate.queued": "排队中",
    "obstate.sent": "已发送",
    "obstate.coalesced": "已合并",
    "obstate.skipped": "已跳过",
    "obstate.digested": "已汇总",
    "time.s": "{n}秒",
    "time.m": "{n}分",
    "time.h": "{h}小时{m}分",
    "time.d": "{d}天{h}小时",
    "time.ago": "{t}前",
    "err.load": "无法加载：{err}",
    "loading": "加载中…",
    "tl.opened": "开启",
    "tl.reopened": "重新开启",
    "tl.acknowledged": "已确认",
    "tl.comment": "评论",
    "tl.escalated": "已升级",
    "tl.resolved": "已解决",
    "tl.closed": "已关闭",
    "tl.suppressed": "已抑制",
    "tl.flapping": "抖动",
    "tl.value update": "数值更新",
    "tl.notify sent": "通知已发送",
    "tl.notify retry": "通知重试",
    "tl.notify dead": "通知失败",
    "tl.notify requeued": "通知重新排队",
    "tl.notify coalesced": "通知已合并",
    "tl.notify digested": "通知已汇总",
    "tl.notify skipped": "通知已跳过",
    "tl.notification sent": "通知已发送",
  },
};

let lang = "en";

export function getLang() {
  return lang;
}

function key(user) {
  return user ? "wp.lang." + user : "wp.lang";
}

// The language stored for this user (or the last one used on this browser), else the
// browser's own when it is Chinese, else English.
export function loadLang(user) {
  let l = null;
  try {
    l = localStorage.getItem(key(user)) || localStorage.getItem(key(null));
  } catch (e) {
    l = null;
  }
  if (!l || !S[l]) {
    l = (navigator.language || "").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
  }
  setLang(l, null);
  return l;
}

export function setLang(l, user) {
  if (!S[l]) {
    return;
  }
  lang = l;
  try {
    localStorage.setItem(key(null), l);
    if (user) {
      localStorage.setItem(key(user), l);
    }
  } catch (e) {
    // private mode: the choice lasts for this page only
  }
  document.documentElement.lang = l;
  document.title = t("title");
  applyStatic(document);
}

export function t(k, params) {
  let s = S[lang][k];
  if (s === undefined) {
    s = S.en[k];
  }
  if (s === undefined) {
    return k;
  }
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, p) => (params[p] !== undefined ? String(params[p]) : m));
  }
  return s;
}

// Elements of the static page carry data-i18n="key" (text) or data-i18n-placeholder.
export function applyStatic(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}
