//! The monitor's two message tables (the language itself, its `?lang=` and negotiation are the
//! portal website's [`Lang`]). Both tables hold the same keys, which a test checks, as it checks
//! that every key the templates and handlers use is in them.

use crate::portal::web::i18n::Lang;

/// The text of `key` in `lang`; empty if the table lacks it (which the tests rule out).
pub fn t(lang: Lang, key: &str) -> &'static str {
    let table = match lang {
        Lang::Zh => ZH,
        Lang::En => EN,
    };
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, v)| *v)
}

/// The text of `key` with each `{name}` replaced by its value.
pub fn fill(lang: Lang, key: &str, args: &[(&str, &str)]) -> String {
    let mut text = t(lang, key).to_owned();
    for (name, value) in args {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

/// Simplified Chinese.
const ZH: &[(&str, &str)] = &[
    ("site.name", "全国政务信息共享网站"),
    ("site.node", "共享交换枢纽节点 {node}"),
    (
        "footer.about",
        "由 govdc 枢纽节点 {node} 提供，仅对成员部门开放。",
    ),
    ("nav.skip", "跳到主要内容"),
    ("nav.label", "主导航"),
    ("nav.overview", "总览"),
    ("nav.departments", "部门共享率"),
    ("nav.provinces", "地区共享率"),
    ("nav.catalogue", "资源目录"),
    ("nav.timeliness", "申请时效"),
    ("nav.federation", "级联状态"),
    ("nav.audit", "审计链"),
    ("nav.signin", "部门登录"),
    ("nav.mine", "本部门"),
    ("lang.other", "English"),
    ("lang.switch", "切换语言"),
    ("overview.title", "全国政务信息共享总览"),
    (
        "overview.intro",
        "本节点及其下级节点汇聚的政务信息资源共享情况。",
    ),
    ("overview.more", "详细情况"),
    ("figure.as_of", "数据时间"),
    ("figure.departments", "接入部门"),
    ("figure.provinces", "接入省份"),
    ("figure.nodes", "共 {n} 个节点"),
    ("figure.catalogue", "目录资源数"),
    ("figure.shared", "可共享资源占比"),
    ("figure.openable", "可开放资源占比"),
    ("figure.of", "{n} / {m}"),
    ("figure.served", "已交换记录"),
    ("figure.grants", "已批准共享申请 {n} 项"),
    ("departments.title", "各部门共享率"),
    (
        "departments.intro",
        "每个部门提供的资源、其中可共享的资源、共享率、已批准的申请和已交换的记录。点击表头可排序。",
    ),
    ("departments.caption", "{n} 个部门的共享情况"),
    ("provinces.title", "各地区共享率"),
    (
        "provinces.intro",
        "本节点及其下级节点（省、市）各自汇总的共享情况。下级节点的数据随其目录上报。",
    ),
    ("provinces.caption", "{n} 个节点的共享情况"),
    ("sharing.csv", "下载 CSV"),
    ("sharing.empty", "尚无共享数据。"),
    ("sharing.node_as_of", "（{time}）"),
    ("col.department", "部门（统一社会信用代码）"),
    ("col.node", "节点"),
    ("col.region", "行政区划代码"),
    ("col.level", "层级"),
    ("col.resources", "资源数"),
    ("col.shared", "可共享"),
    ("col.rate", "共享率"),
    ("col.grants", "已批准申请"),
    ("col.served", "已交换记录"),
    ("col.provider", "提供部门"),
    ("col.consumer", "申请部门"),
    ("col.decided", "已答复"),
    ("col.median", "答复时间中位数"),
    ("col.p95", "答复时间 95 分位"),
    ("col.pending", "待答复"),
    ("col.overdue", "已超期"),
    ("col.request", "申请编号"),
    ("col.resource", "资源"),
    ("col.requested", "申请时间"),
    ("col.waiting", "已等待"),
    ("col.purpose", "用途"),
    ("col.state", "状态"),
    ("sort.asc", "（按此列升序排列）"),
    ("sort.desc", "（按此列降序排列）"),
    ("trend.title", "每日趋势"),
    ("trend.caption", "每日共享情况（共享率为当日最新值）"),
    ("trend.chart_title", "共享率每日趋势"),
    (
        "trend.chart_desc",
        "折线图：横轴为日期，纵轴为共享率（0% 至 100%）；旁边的表格列出每个数据点。",
    ),
    ("trend.day", "日期"),
    ("level.national", "国家级"),
    ("level.provincial", "省级"),
    ("level.municipal", "市级"),
    ("level.unspecified", "未知层级"),
    ("catalogue.title", "政务信息资源目录"),
    (
        "catalogue.intro",
        "本节点及其下级节点登记的共享资源。不予共享的资源注明理由。",
    ),
    ("catalogue.count", "找到 {n} 项资源"),
    (
        "catalogue.none",
        "没有符合条件的资源。请减少筛选条件或换一个搜索词。",
    ),
    ("catalogue.node", "登记节点"),
    ("catalogue.updated", "更新于"),
    ("catalogue.reason", "不予共享的理由"),
    ("catalogue.no_reason", "提供部门未说明理由。"),
    ("search.label", "搜索资源"),
    (
        "search.hint",
        "按名称、描述、编码和字段名搜索，多个词之间用空格分隔",
    ),
    ("search.button", "搜索"),
    ("facets.title", "筛选"),
    ("facet.department", "提供部门"),
    ("facet.share", "共享类型"),
    ("facet.open", "开放类型"),
    ("filters.active", "已选条件"),
    ("filters.remove", "移除条件"),
    ("filters.clear", "清除全部条件"),
    ("share.unconditional", "无条件共享"),
    ("share.conditional", "有条件共享"),
    ("share.not-shared", "不予共享"),
    ("open.unconditional", "无条件开放"),
    ("open.conditional", "有条件开放"),
    ("open.not-open", "不予开放"),
    ("page.label", "分页"),
    ("page.prev", "上一页"),
    ("page.next", "下一页"),
    ("page.of", "第 {page} 页，共 {pages} 页"),
    ("timeliness.title", "共享申请时效"),
    (
        "timeliness.intro",
        "本节点上有条件共享资源的申请从提出到提供部门答复所用的时间；等待超过 {deadline} 的申请列为超期。",
    ),
    ("timeliness.caption", "各提供部门的答复时效"),
    ("timeliness.none", "本节点尚无有条件共享的申请。"),
    ("timeliness.overdue", "超期未答复的申请"),
    ("timeliness.overdue_caption", "超期申请，最早提出的在前"),
    ("timeliness.no_overdue", "没有超期未答复的申请。"),
    ("state.pending", "待答复"),
    ("state.approved", "已批准"),
    ("state.refused", "已拒绝"),
    ("state.revoked", "已撤销"),
    ("state.unspecified", "未知"),
    ("federation.title", "级联状态"),
    (
        "federation.intro",
        "下级节点每 {interval} 上报一次目录和统计数据；超过 {stale} 未上报的节点标记为“数据过期”。",
    ),
    ("federation.parent", "上级节点"),
    ("federation.no_parent", "本节点没有上级节点。"),
    ("federation.endpoint", "地址"),
    ("federation.state", "状态"),
    ("federation.last_sync", "最近一次上报"),
    ("federation.error", "错误"),
    ("federation.connected", "已连接"),
    ("federation.disconnected", "未连接"),
    ("federation.children", "下级节点"),
    ("federation.no_children", "尚无下级节点向本节点上报。"),
    ("federation.caption", "各下级节点最近一次上报"),
    ("federation.current", "正常"),
    ("federation.stale", "数据过期"),
    ("federation.never", "从未"),
    ("audit.title", "审计链状态"),
    (
        "audit.intro",
        "本节点的审计记录逐条以哈希链接；此处重新计算整条链，并与保存在存储旁的上级锚点副本比对。",
    ),
    ("audit.verified", "已验证至第 {n} 条记录（{algorithm}）"),
    (
        "audit.failed",
        "验证失败：第 {seq} 条记录（{finding}，{algorithm}）",
    ),
    ("audit.algorithm", "摘要算法"),
    ("audit.records", "已验证记录数"),
    ("audit.checked", "验证时间"),
    ("audit.anchors", "比对的锚点"),
    ("audit.source", "来源"),
    ("audit.anchor", "锚点（记录号 · 记录者）"),
    ("audit.outcome", "结果"),
    ("signin.title", "部门登录"),
    (
        "signin.intro",
        "成员部门使用本节点签发的成员令牌登录，查看本部门的共享申请和授权。令牌只通过此表单提交，不会出现在网址中。",
    ),
    ("signin.token", "成员令牌"),
    (
        "signin.hint",
        "粘贴本节点签发给本部门的令牌（role: member）。",
    ),
    ("signin.button", "登录"),
    ("signin.failed", "登录失败"),
    (
        "signin.refused",
        "令牌无效、已过期、不是成员令牌，或该部门已不是本节点的成员。",
    ),
    ("signout.button", "退出登录"),
    ("mine.title", "本部门的申请和授权"),
    ("mine.heading", "{name}（{code}）的申请和授权"),
    ("mine.requests", "本部门提出的申请"),
    ("mine.requests_caption", "本部门作为申请方的共享申请"),
    ("mine.no_requests", "本部门尚未提出共享申请。"),
    ("mine.grants", "向本部门提出的申请"),
    ("mine.grants_caption", "本部门作为提供方收到的共享申请"),
    ("mine.no_grants", "尚无部门向本部门申请资源。"),
    ("csrf.title", "表单已失效"),
    (
        "csrf.body",
        "该表单不是本网站刚刚提供的，或已过期。请返回重新提交。",
    ),
    ("error.title", "请求有误"),
    ("error.parameter", "参数"),
    ("error.back", "返回总览"),
    ("notfound.title", "页面不存在"),
    ("notfound.body", "本网站没有这个页面。"),
    ("unavailable.title", "网站暂时无法响应"),
    ("unavailable.body", "请稍后再试。"),
];

/// English.
const EN: &[(&str, &str)] = &[
    (
        "site.name",
        "National Government Information Sharing Monitor",
    ),
    ("site.node", "Exchange hub node {node}"),
    (
        "footer.about",
        "Served by govdc hub node {node}, to member departments only.",
    ),
    ("nav.skip", "Skip to main content"),
    ("nav.label", "Main"),
    ("nav.overview", "Overview"),
    ("nav.departments", "By department"),
    ("nav.provinces", "By region"),
    ("nav.catalogue", "Catalogue"),
    ("nav.timeliness", "Timeliness"),
    ("nav.federation", "Federation"),
    ("nav.audit", "Audit chain"),
    ("nav.signin", "Department sign-in"),
    ("nav.mine", "My department"),
    ("lang.other", "中文"),
    ("lang.switch", "Change language"),
    ("overview.title", "National sharing overview"),
    (
        "overview.intro",
        "How government information is shared on this node and every node below it.",
    ),
    ("overview.more", "In detail"),
    ("figure.as_of", "As of"),
    ("figure.departments", "Departments connected"),
    ("figure.provinces", "Provinces connected"),
    ("figure.nodes", "{n} nodes in all"),
    ("figure.catalogue", "Resources in the catalogue"),
    ("figure.shared", "Share of resources shared"),
    ("figure.openable", "Share of resources openable"),
    ("figure.of", "{n} of {m}"),
    ("figure.served", "Records exchanged"),
    ("figure.grants", "{n} access requests approved"),
    ("departments.title", "Sharing rate by department"),
    (
        "departments.intro",
        "Each department's resources, those it shares, its sharing rate, the requests it approved and the records it served. Select a heading to sort.",
    ),
    ("departments.caption", "Sharing of {n} departments"),
    ("provinces.title", "Sharing rate by region"),
    (
        "provinces.intro",
        "The figures of this node and each node below it (provinces, cities), as each sends them up with its catalogue.",
    ),
    ("provinces.caption", "Sharing of {n} nodes"),
    ("sharing.csv", "Download as CSV"),
    ("sharing.empty", "No sharing figures yet."),
    ("sharing.node_as_of", "({time})"),
    ("col.department", "Department (credit code)"),
    ("col.node", "Node"),
    ("col.region", "Region code"),
    ("col.level", "Level"),
    ("col.resources", "Resources"),
    ("col.shared", "Shared"),
    ("col.rate", "Sharing rate"),
    ("col.grants", "Requests approved"),
    ("col.served", "Records served"),
    ("col.provider", "Provider"),
    ("col.consumer", "Requester"),
    ("col.decided", "Decided"),
    ("col.median", "Median time to decision"),
    ("col.p95", "95th percentile"),
    ("col.pending", "Waiting"),
    ("col.overdue", "Overdue"),
    ("col.request", "Request"),
    ("col.resource", "Resource"),
    ("col.requested", "Requested"),
    ("col.waiting", "Waiting for"),
    ("col.purpose", "Purpose"),
    ("col.state", "State"),
    ("sort.asc", "(sort ascending by this column)"),
    ("sort.desc", "(sort descending by this column)"),
    ("trend.title", "Daily trend"),
    ("trend.caption", "Sharing by day (the day's latest figures)"),
    ("trend.chart_title", "Sharing rate by day"),
    (
        "trend.chart_desc",
        "Line chart: days across, the sharing rate (0% to 100%) up; the table beside it lists every point.",
    ),
    ("trend.day", "Day"),
    ("level.national", "National"),
    ("level.provincial", "Provincial"),
    ("level.municipal", "Municipal"),
    ("level.unspecified", "Unknown level"),
    ("catalogue.title", "Shared resource catalogue"),
    (
        "catalogue.intro",
        "The resources registered on this node and the nodes below it. Where one is not shared, the reason is given.",
    ),
    ("catalogue.count", "{n} resources found"),
    (
        "catalogue.none",
        "No resource matches. Remove a filter or try other words.",
    ),
    ("catalogue.node", "registered on"),
    ("catalogue.updated", "Updated"),
    ("catalogue.reason", "Why it is not shared"),
    ("catalogue.no_reason", "The provider gave no reason."),
    ("search.label", "Search resources"),
    (
        "search.hint",
        "Searches names, descriptions, codes and field names; separate words with spaces",
    ),
    ("search.button", "Search"),
    ("facets.title", "Filter"),
    ("facet.department", "Provider"),
    ("facet.share", "Share type"),
    ("facet.open", "Open type"),
    ("filters.active", "Active filters"),
    ("filters.remove", "Remove filter"),
    ("filters.clear", "Clear all filters"),
    ("share.unconditional", "Shared unconditionally"),
    ("share.conditional", "Shared on conditions"),
    ("share.not-shared", "Not shared"),
    ("open.unconditional", "Openable to all"),
    ("open.conditional", "Openable on conditions"),
    ("open.not-open", "Not openable"),
    ("page.label", "Pages"),
    ("page.prev", "Previous page"),
    ("page.next", "Next page"),
    ("page.of", "Page {page} of {pages}"),
    ("timeliness.title", "Request timeliness"),
    (
        "timeliness.intro",
        "How long requests for resources shared on conditions on this node wait for the provider's decision; those waiting longer than {deadline} are overdue.",
    ),
    ("timeliness.caption", "Time to decision by provider"),
    (
        "timeliness.none",
        "No request for a resource shared on conditions on this node yet.",
    ),
    ("timeliness.overdue", "Overdue requests"),
    (
        "timeliness.overdue_caption",
        "Overdue requests, oldest first",
    ),
    ("timeliness.no_overdue", "No request is overdue."),
    ("state.pending", "Waiting"),
    ("state.approved", "Approved"),
    ("state.refused", "Refused"),
    ("state.revoked", "Revoked"),
    ("state.unspecified", "Unknown"),
    ("federation.title", "Federation health"),
    (
        "federation.intro",
        "Nodes below push their catalogue and figures every {interval}; one that has not for {stale} is marked stale.",
    ),
    ("federation.parent", "Parent node"),
    ("federation.no_parent", "This node has no parent."),
    ("federation.endpoint", "Endpoint"),
    ("federation.state", "State"),
    ("federation.last_sync", "Last push"),
    ("federation.error", "Error"),
    ("federation.connected", "Connected"),
    ("federation.disconnected", "Not connected"),
    ("federation.children", "Child nodes"),
    (
        "federation.no_children",
        "No node below has pushed to this one yet.",
    ),
    ("federation.caption", "Each child's last push"),
    ("federation.current", "Current"),
    ("federation.stale", "Stale"),
    ("federation.never", "Never"),
    ("audit.title", "Audit chain"),
    (
        "audit.intro",
        "Each audit record of this node is chained to the one before by its hash; this page recomputes the whole chain and compares it with the copy of the parent's anchor kept beside the store.",
    ),
    ("audit.verified", "Verified up to record {n} ({algorithm})"),
    (
        "audit.failed",
        "Verification failed at record {seq} ({finding}, {algorithm})",
    ),
    ("audit.algorithm", "Digest"),
    ("audit.records", "Records verified"),
    ("audit.checked", "Checked"),
    ("audit.anchors", "Anchors compared"),
    ("audit.source", "Source"),
    ("audit.anchor", "Anchor (record · recorded by)"),
    ("audit.outcome", "Outcome"),
    ("signin.title", "Department sign-in"),
    (
        "signin.intro",
        "Member departments sign in with the member token this node issued them to see their own requests and grants. The token is sent with this form only, never in a web address.",
    ),
    ("signin.token", "Member token"),
    (
        "signin.hint",
        "Paste the token this node issued to your department (role: member).",
    ),
    ("signin.button", "Sign in"),
    ("signin.failed", "Sign-in failed"),
    (
        "signin.refused",
        "The token is not valid, has expired, is not a member token, or the department is no longer a member of this node.",
    ),
    ("signout.button", "Sign out"),
    ("mine.title", "My department's requests and grants"),
    ("mine.heading", "Requests and grants of {name} ({code})"),
    ("mine.requests", "Requests we made"),
    (
        "mine.requests_caption",
        "Access requests made by this department",
    ),
    ("mine.no_requests", "This department has made no request."),
    ("mine.grants", "Requests made to us"),
    (
        "mine.grants_caption",
        "Access requests to this department's resources",
    ),
    (
        "mine.no_grants",
        "No department has asked for this department's resources.",
    ),
    ("csrf.title", "The form has expired"),
    (
        "csrf.body",
        "This form was not the one this site just served, or it has expired. Go back and send it again.",
    ),
    ("error.title", "There is a problem with the request"),
    ("error.parameter", "The parameter"),
    ("error.back", "Back to the overview"),
    ("notfound.title", "Page not found"),
    ("notfound.body", "There is no such page on this site."),
    ("unavailable.title", "The site cannot answer now"),
    ("unavailable.body", "Please try again in a moment."),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(table: &[(&'static str, &str)]) -> BTreeSet<&'static str> {
        table.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn both_languages_have_the_same_keys_each_once_and_none_empty() {
        assert_eq!(keys(ZH), keys(EN));
        assert_eq!(keys(ZH).len(), ZH.len(), "a Chinese key is listed twice");
        assert_eq!(keys(EN).len(), EN.len(), "an English key is listed twice");
        for (key, text) in ZH.iter().chain(EN) {
            assert!(!text.trim().is_empty(), "{key} is empty");
        }
    }

    /// Every quoted `word.word` in the monitor's templates and handlers is a key of the tables
    /// (the handlers name keys as literals; the share and open types' keys are built from
    /// their slugs and checked one by one).
    #[test]
    fn every_key_used_is_in_the_tables() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let known = keys(ZH);
        let mut used = 0;
        let mut files = Vec::new();
        let mut dirs = vec![root.join("templates/monitor"), root.join("src/monitor")];
        while let Some(dir) = dirs.pop() {
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.map(|f| f.path()).unwrap_or_default();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        assert!(
            files.iter().any(|f| f.ends_with("routes/sharing.rs")),
            "{files:?}"
        );
        for path in files {
            {
                if path.file_name().is_some_and(|n| n == "i18n.rs") {
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap_or_default();
                for literal in source.split('"').skip(1).step_by(2) {
                    let parts: Vec<&str> = literal.split('.').collect();
                    let prefix_known = known
                        .iter()
                        .any(|k| k.split('.').next() == parts.first().copied());
                    let is_key = parts.len() == 2
                        && prefix_known
                        && parts.iter().all(|w| {
                            !w.is_empty()
                                && w.bytes()
                                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
                        });
                    if is_key {
                        used += 1;
                        assert!(
                            known.contains(literal),
                            "{literal} in {} is in no table",
                            path.display()
                        );
                    }
                }
            }
        }
        assert!(used > 100, "only {used} keys found: the scan is broken");
        for slug in ["unconditional", "conditional", "not-shared"] {
            assert!(known.contains(format!("share.{slug}").as_str()));
        }
        for slug in ["unconditional", "conditional", "not-open"] {
            assert!(known.contains(format!("open.{slug}").as_str()));
        }
    }
}
