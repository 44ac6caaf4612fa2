//! The website's two languages: every text it shows is a key in one table per language (the
//! tables hold the same keys, which a test checks), the names of the plan's categories, and which
//! language a request gets (`?lang=` first, then `Accept-Language`, then Chinese).

/// A language of the website.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese, the default.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Its BCP 47 tag, for `<html lang>`, `hreflang` and `?lang=`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The other language, which the switch links to.
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The language `?lang=` names (`zh-CN`, `zh`, `en`, any case), if it is one of ours.
    pub fn from_param(value: &str) -> Option<Lang> {
        match value.to_ascii_lowercase().as_str() {
            "zh-cn" | "zh" | "zh-hans" => Some(Lang::Zh),
            "en" | "en-gb" | "en-us" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language an `Accept-Language` header prefers among ours (RFC 9110 §12.5.4: the
    /// highest weight wins, the first listed among equals); Chinese when it names neither.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(Lang, f32)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if range == "zh" || range.starts_with("zh-") {
                Lang::Zh
            } else if range == "en" || range.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if weight > 0.0 && best.is_none_or(|(_, w)| weight > w) {
                best = Some((lang, weight));
            }
        }
        best.map_or(Lang::Zh, |(lang, _)| lang)
    }

    fn table(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::Zh => ZH,
            Lang::En => EN,
        }
    }

    /// The text of `key`; empty if the table lacks it (which the tests rule out for every key
    /// the templates and handlers use).
    pub fn t(self, key: &str) -> &'static str {
        self.table()
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| *v)
    }

    /// The text of `key` with each `{name}` replaced by its value.
    pub fn fill(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// The name of a field's de-identification treatment (`keep`, `mask`, ...) in this
    /// language; the treatment itself for one the portal does not know.
    pub fn treatment(self, treatment: &str) -> String {
        let text = self.t(&format!("treatment.{treatment}"));
        if text.is_empty() {
            treatment.to_owned()
        } else {
            text.to_owned()
        }
    }

    /// The name of category `id` in this language; the id itself for a category the plan does
    /// not list.
    pub fn category(self, id: &str) -> String {
        CATEGORIES.iter().find(|(c, _, _)| *c == id).map_or_else(
            || id.to_owned(),
            |(_, zh, en)| match self {
                Lang::Zh => (*zh).to_owned(),
                Lang::En => (*en).to_owned(),
            },
        )
    }
}

/// The plan's open-data categories: id (as OpenDataset `spec.category` writes it), Chinese and
/// English name.
pub const CATEGORIES: &[(&str, &str, &str)] = &[
    (
        "enterprise-registration",
        "企业登记",
        "Enterprise registration",
    ),
    ("credit", "信用", "Credit"),
    ("transport", "交通", "Transport"),
    ("medical", "医疗", "Medical care"),
    ("health", "卫生", "Public health"),
    ("employment", "就业", "Employment"),
    ("social-security", "社保", "Social security"),
    ("geography", "地理", "Geography"),
    ("culture", "文化", "Culture"),
    ("education", "教育", "Education"),
    ("science", "科技", "Science and technology"),
    ("intellectual-property", "知识产权", "Intellectual property"),
    ("natural-resources", "资源", "Natural resources"),
    ("agriculture", "农业", "Agriculture"),
    ("forestry", "林业", "Forestry"),
    ("environment", "环境", "Environment"),
    ("work-safety", "安监", "Work safety"),
    ("quality", "质量", "Quality"),
    ("statistics", "统计", "Statistics"),
    ("weather", "气象", "Weather"),
];

/// Simplified Chinese.
const ZH: &[(&str, &str)] = &[
    ("site.name", "国家公共数据开放网站"),
    (
        "site.tagline",
        "经安全脱敏、分级分类的公共数据，可机读批量下载",
    ),
    ("site.node", "枢纽节点 {node}"),
    ("nav.skip", "跳到主要内容"),
    ("nav.label", "主导航"),
    ("nav.home", "首页"),
    ("nav.datasets", "数据目录"),
    ("nav.api", "开发者接口"),
    ("lang.other", "English"),
    ("lang.switch", "切换语言"),
    ("search.label", "搜索数据集"),
    (
        "search.hint",
        "按标题、描述和标签搜索，多个词之间用空格分隔",
    ),
    ("search.button", "搜索"),
    ("home.title", "查找和下载公共数据"),
    ("home.intro", "浏览、搜索并下载各部门开放的公共数据。"),
    ("home.categories", "按领域浏览"),
    ("home.departments", "按部门浏览"),
    ("home.recent", "最近更新"),
    ("home.all", "查看全部 {n} 个数据集"),
    ("home.empty", "本网站尚未开放数据集。"),
    ("count.datasets", "{n} 个数据集"),
    ("datasets.title", "数据目录"),
    ("results.count", "找到 {n} 个数据集"),
    (
        "results.none",
        "没有符合条件的数据集。请减少筛选条件或换一个搜索词。",
    ),
    ("results.page", "第 {page} 页，共 {pages} 页"),
    ("facets.title", "筛选"),
    ("facet.category", "领域"),
    ("facet.department", "部门"),
    ("facet.format", "格式"),
    ("facet.license", "许可协议"),
    ("facet.openness", "开放类型"),
    ("filters.active", "已选条件"),
    ("filters.remove", "移除条件"),
    ("filters.clear", "清除全部条件"),
    ("sort.label", "排序"),
    ("sort.relevance", "相关度"),
    ("sort.newest", "最近更新"),
    ("sort.apply", "应用排序"),
    ("page.label", "分页"),
    ("page.prev", "上一页"),
    ("page.next", "下一页"),
    ("openness.unconditional", "无条件开放"),
    ("openness.conditional", "有条件开放"),
    (
        "openness.unconditional.how",
        "任何人均可直接下载，无需注册或申请。",
    ),
    (
        "openness.conditional.how",
        "需向平台提交数据使用申请；经批准后，凭下载令牌（Authorization: Bearer）下载。",
    ),
    ("dataset.about", "基本信息"),
    ("dataset.publisher", "发布部门"),
    ("dataset.category", "领域"),
    ("dataset.tags", "标签"),
    ("dataset.license", "许可协议"),
    ("dataset.openness", "开放类型"),
    ("dataset.version", "版本"),
    ("dataset.records", "记录数"),
    ("dataset.updated", "最近更新"),
    ("dataset.files", "数据文件"),
    ("file.format", "格式"),
    ("file.size", "大小"),
    ("file.sha256", "SHA-256 校验值"),
    ("file.download", "下载"),
    ("file.download_named", "下载 {format} 文件"),
    ("file.checksums", "校验和文件（SHA256SUMS）"),
    ("dataset.fields", "字段说明"),
    ("field.name", "字段"),
    ("field.treatment", "脱敏处理"),
    ("field.description", "说明"),
    ("treatment.keep", "原样发布"),
    ("treatment.drop", "不发布"),
    ("treatment.mask", "掩码"),
    ("treatment.pseudonymize", "假名化（HMAC）"),
    ("treatment.generalize", "泛化"),
    ("treatment.dateShift", "日期偏移"),
    ("dataset.identifiers", "有意公开的标识信息"),
    (
        "identifiers.intro",
        "以下字段经发布部门声明并说明理由，有意公开标识信息：",
    ),
    ("identifiers.kinds", "标识类型"),
    ("identifiers.justification", "理由"),
    ("dataset.risk", "再识别风险"),
    ("risk.smallest_group", "最小等价组"),
    ("risk.groups", "等价组数"),
    ("risk.highest", "最高检察官风险"),
    ("risk.average", "平均检察官风险"),
    ("risk.threshold", "风险阈值"),
    ("risk.at_risk", "超过阈值的记录"),
    ("dataset.preview", "数据预览"),
    ("preview.caption", "data.csv.gz 的前 {n} 行"),
    ("preview.conditional", "有条件开放的数据不提供预览。"),
    ("preview.none", "该数据集没有可预览的 CSV 文件。"),
    ("preview.unavailable", "预览暂不可用。"),
    ("preview.empty", "该文件没有数据行。"),
    ("dataset.use", "在程序中使用"),
    ("snippet.curl", "用 curl 下载并校验"),
    ("snippet.ckanapi", "用 ckanapi 读取元数据（CKAN 接口）"),
    ("snippet.dcat", "DCAT-AP 目录（JSON-LD）"),
    ("snippet.json", "数据集元数据（JSON）"),
    ("error.title", "请求有误"),
    ("error.unknown", "本页面不支持参数 {name}。"),
    ("error.repeated", "参数 {name} 出现了不止一次。"),
    (
        "error.invalid",
        "参数 {name} 的值“{value}”无效；可用的值：{allowed}。",
    ),
    ("error.too_long", "参数 {name} 超过 {max} 个字符。"),
    ("error.parameter", "出错的参数"),
    ("error.back", "返回数据目录"),
    ("notfound.title", "未找到该数据集"),
    (
        "notfound.body",
        "本网站没有标识为 {id} 的数据集，它可能已被撤回。",
    ),
    ("unavailable.title", "网站暂时无法响应"),
    ("unavailable.body", "请稍后再试。"),
    ("restoring.title", "数据文件正在恢复"),
    (
        "restoring.body",
        "本网站的数据已从另一节点恢复，该数据集的文件尚在恢复中，请稍后再下载。",
    ),
    ("footer.machine", "机器可读接口"),
    (
        "footer.about",
        "由 govdc 数据共享交换枢纽节点 {node} 提供。",
    ),
    ("nav.departments", "部门"),
    ("sort.downloads", "下载最多"),
    ("home.popular", "下载最多"),
    ("home.popular_empty", "尚无下载记录。"),
    ("card.downloads", "{n} 次下载"),
    ("dataset.downloads", "下载次数"),
    ("dataset.frequency", "更新频率"),
    ("dataset.timeliness", "及时性"),
    ("timeliness.irregular", "不定期更新，没有需要遵守的更新计划"),
    ("timeliness.on_time", "按时：下一版本应于 {due} 前发布"),
    ("timeliness.overdue", "逾期：新版本应于 {due} 前发布"),
    ("frequency.irregular", "不定期"),
    ("frequency.hourly", "每小时"),
    ("frequency.daily", "每日"),
    ("frequency.weekly", "每周"),
    ("frequency.monthly", "每月"),
    ("frequency.quarterly", "每季度"),
    ("frequency.half_yearly", "每半年"),
    ("frequency.yearly", "每年"),
    ("frequency.rarely", "一年以上一次"),
    ("dataset.history", "版本历史"),
    ("history.version", "版本"),
    ("history.change", "变更"),
    ("history.at", "时间"),
    ("history.records", "记录数"),
    ("history.content", "内容摘要（SHA-256）"),
    ("history.quality", "元数据质量"),
    ("change.publish", "发布"),
    ("change.unpublish", "撤回"),
    ("dataset.quality", "元数据质量"),
    ("quality.score", "{score} / {max} 分（{rating}）"),
    (
        "quality.intro",
        "发布时按 data.europa.eu 元数据质量评估（MQA）的五个维度评估。",
    ),
    ("quality.dimension", "维度"),
    ("quality.points", "得分"),
    ("quality.missing", "缺少"),
    ("quality.complete", "无缺项"),
    ("quality.findability", "可发现性"),
    ("quality.accessibility", "可访问性"),
    ("quality.interoperability", "互操作性"),
    ("quality.reusability", "可重用性"),
    ("quality.contextuality", "情境信息"),
    ("rating.excellent", "优秀"),
    ("rating.good", "良好"),
    ("rating.sufficient", "合格"),
    ("rating.bad", "较差"),
    ("quality.check.keywords", "关键词（标签）"),
    ("quality.check.category", "规划领域分类"),
    ("quality.check.description", "至少 20 字的描述"),
    ("quality.check.frequency", "更新频率"),
    ("quality.check.access_url", "数据集页面（访问地址）"),
    ("quality.check.download_url", "下载地址"),
    ("quality.check.open_download", "无需申请即可下载"),
    ("quality.check.format", "文件格式"),
    ("quality.check.media_type", "媒体类型"),
    ("quality.check.format_vocabulary", "格式取自受控词表"),
    ("quality.check.non_proprietary", "非专有格式"),
    ("quality.check.machine_readable", "机器可读格式"),
    ("quality.check.dcat_ap", "符合 DCAT-AP"),
    ("quality.check.license", "许可协议"),
    ("quality.check.license_vocabulary", "许可协议取自 SPDX 词表"),
    ("quality.check.access_rights", "开放类型"),
    (
        "quality.check.access_rights_vocabulary",
        "开放类型取自受控词表",
    ),
    ("quality.check.field_documentation", "每个字段均有说明"),
    ("quality.check.publisher", "发布部门"),
    ("quality.check.record_count", "记录数"),
    ("quality.check.byte_size", "文件大小"),
    ("quality.check.issued", "发布日期"),
    ("quality.check.version", "版本号"),
    ("departments.title", "部门"),
    (
        "departments.intro",
        "各部门开放的数据集、按时更新率和元数据质量，按平均元数据质量排名。",
    ),
    ("departments.rank", "排名"),
    ("departments.department", "部门"),
    ("departments.datasets", "数据集"),
    ("departments.quality", "平均元数据质量"),
    ("departments.on_time", "按时更新率"),
    ("departments.downloads", "下载次数"),
    ("departments.none", "尚无部门发布数据集。"),
    (
        "department.on_time",
        "{rate}（{on} / {of} 个有更新计划的数据集按时更新）",
    ),
    ("department.no_schedule", "没有设定更新计划的数据集"),
    ("department.datasets", "该部门的数据集"),
    ("department.search", "在数据目录中筛选该部门的数据集"),
    ("department.code", "统一社会信用代码"),
    ("department.notfound", "未找到该部门"),
    (
        "department.notfound.body",
        "本网站没有统一社会信用代码为 {code} 的部门发布的数据集。",
    ),
    ("nav.changes", "更新动态"),
    ("changes.title", "更新动态"),
    (
        "changes.intro",
        "各部门发布和撤回数据集的记录，最新的在前。",
    ),
    ("changes.feed", "订阅 Atom 源"),
    ("changes.none", "尚无发布记录。"),
    ("changes.caption", "数据集的发布和撤回"),
    ("changes.dataset", "数据集"),
    ("changes.older", "更早的记录"),
    ("changes.newest", "最新记录"),
    ("footer.feed", "发布动态（Atom）"),
    ("footer.catalogue_csv", "全部目录（CSV）"),
    ("footer.catalogue_json", "全部目录（JSON）"),
    ("footer.manifest", "批量下载清单（wget -i）"),
    ("departments.caption", "各部门按平均元数据质量排名"),
    // Applications for conditional datasets (`super::apply`).
    ("dataset.apply", "申请使用此数据集"),
    ("apply.title", "数据使用申请"),
    ("apply.heading", "申请使用：{title}"),
    (
        "apply.intro",
        "本数据集为有条件开放。提交申请后由平台运营方审核；获批后，您可在申请状态页领取下载令牌，令牌只显示一次。",
    ),
    ("apply.field.applicant", "申请人姓名"),
    ("apply.field.organisation", "所在单位"),
    ("apply.field.purpose", "数据用途"),
    ("apply.field.contact", "联系方式"),
    ("apply.hint.applicant", "填写申请人的真实姓名。"),
    (
        "apply.hint.organisation",
        "填写申请人所在的单位或机构全称。",
    ),
    (
        "apply.hint.purpose",
        "说明数据的用途、使用范围和期限（至少 10 个字）。",
    ),
    (
        "apply.hint.contact",
        "电子邮件地址或电话号码，用于审核时联系您。",
    ),
    ("apply.submit", "提交申请"),
    ("apply.problems", "请更正以下问题"),
    ("apply.problem.missing", "请填写“{field}”。"),
    ("apply.problem.too_long", "“{field}”不能超过 {max} 个字符。"),
    (
        "apply.problem.too_short",
        "“{field}”至少需要 {min} 个字符。",
    ),
    ("apply.problem.control", "“{field}”含有不允许的控制字符。"),
    ("apply.problem.contact", "请填写电子邮件地址或电话号码。"),
    (
        "apply.unconditional",
        "该数据集为无条件开放，任何人都可以直接下载，无需申请。",
    ),
    ("apply.full", "目前待审核的申请过多，请稍后再试。"),
    ("csrf.title", "表单已失效"),
    (
        "csrf.body",
        "为保护您的申请，本次提交未被接受。请返回表单页面，刷新后重新提交。",
    ),
    ("application.title", "申请状态"),
    (
        "application.keep",
        "请保存本页链接：这是查看申请进度和领取下载令牌的唯一途径。",
    ),
    ("application.number", "申请编号"),
    ("application.dataset", "申请的数据集"),
    ("application.applicant", "申请人"),
    ("application.submitted", "提交时间"),
    ("application.state", "状态"),
    ("application.state.pending", "待审核"),
    ("application.state.approved", "已批准"),
    ("application.state.rejected", "未批准"),
    ("application.state.collected", "令牌已领取"),
    ("application.state.expired", "已过期"),
    (
        "application.pending",
        "平台运营方审核后，本页会显示结果。请稍后再访问本页。",
    ),
    (
        "application.approved",
        "您的申请已获批准，下载令牌有效期至 {expires}。令牌只显示一次，领取后请立即妥善保存。",
    ),
    ("application.collect", "领取下载令牌"),
    ("application.rejected", "您的申请未获批准，原因如下："),
    (
        "application.collected",
        "下载令牌已于 {at} 领取，本页不再显示令牌。如令牌遗失，请重新申请。",
    ),
    (
        "application.expired",
        "批准已于 {at} 过期，令牌未被领取。如仍需要数据，请重新申请。",
    ),
    ("application.gone", "该数据集已不再提供，无法领取下载令牌。"),
    ("application.notfound.title", "找不到该申请"),
    (
        "application.notfound.body",
        "链接不正确或不完整。请检查您保存的申请状态页链接。",
    ),
    ("token.title", "您的下载令牌"),
    (
        "token.once",
        "这是令牌唯一一次显示：请立即复制并妥善保存。再次访问本页只会显示令牌已被领取。",
    ),
    ("token.label", "下载令牌"),
    ("token.expires", "有效期至 {expires}。"),
    ("token.use", "使用方法"),
];

/// English.
const EN: &[(&str, &str)] = &[
    ("site.name", "National Public Open Data Portal"),
    (
        "site.tagline",
        "De-identified, graded and classified public data as machine-readable bulk downloads",
    ),
    ("site.node", "Hub node {node}"),
    ("nav.skip", "Skip to main content"),
    ("nav.label", "Main"),
    ("nav.home", "Home"),
    ("nav.datasets", "Datasets"),
    ("nav.api", "API"),
    ("lang.other", "中文"),
    ("lang.switch", "Change language"),
    ("search.label", "Search datasets"),
    (
        "search.hint",
        "Searches titles, descriptions and tags; separate words with spaces",
    ),
    ("search.button", "Search"),
    ("home.title", "Find and download public data"),
    (
        "home.intro",
        "Browse, search and download the public data that departments open.",
    ),
    ("home.categories", "Browse by category"),
    ("home.departments", "Browse by department"),
    ("home.recent", "Recently updated"),
    ("home.all", "See all {n} datasets"),
    ("home.empty", "No dataset is open on this portal yet."),
    ("count.datasets", "{n} datasets"),
    ("datasets.title", "Datasets"),
    ("results.count", "{n} datasets found"),
    (
        "results.none",
        "No dataset matches. Remove a filter or try other words.",
    ),
    ("results.page", "Page {page} of {pages}"),
    ("facets.title", "Filter"),
    ("facet.category", "Category"),
    ("facet.department", "Department"),
    ("facet.format", "Format"),
    ("facet.license", "Licence"),
    ("facet.openness", "Openness"),
    ("filters.active", "Active filters"),
    ("filters.remove", "Remove filter"),
    ("filters.clear", "Clear all filters"),
    ("sort.label", "Sort by"),
    ("sort.relevance", "Relevance"),
    ("sort.newest", "Recently updated"),
    ("sort.apply", "Apply sort"),
    ("page.label", "Pages"),
    ("page.prev", "Previous page"),
    ("page.next", "Next page"),
    ("openness.unconditional", "Open to all"),
    ("openness.conditional", "Open on conditions"),
    (
        "openness.unconditional.how",
        "Anyone may download it, without registering or applying.",
    ),
    (
        "openness.conditional.how",
        "Apply to the platform for its use; once approved, download it with your token (Authorization: Bearer).",
    ),
    ("dataset.about", "About this dataset"),
    ("dataset.publisher", "Publisher"),
    ("dataset.category", "Category"),
    ("dataset.tags", "Tags"),
    ("dataset.license", "Licence"),
    ("dataset.openness", "Openness"),
    ("dataset.version", "Version"),
    ("dataset.records", "Records"),
    ("dataset.updated", "Last updated"),
    ("dataset.files", "Files"),
    ("file.format", "Format"),
    ("file.size", "Size"),
    ("file.sha256", "SHA-256 checksum"),
    ("file.download", "Download"),
    ("file.download_named", "Download the {format} file"),
    ("file.checksums", "Checksums file (SHA256SUMS)"),
    ("dataset.fields", "Fields"),
    ("field.name", "Field"),
    ("field.treatment", "De-identification"),
    ("field.description", "Description"),
    ("treatment.keep", "Published as is"),
    ("treatment.drop", "Left out"),
    ("treatment.mask", "Masked"),
    ("treatment.pseudonymize", "Pseudonymized (HMAC)"),
    ("treatment.generalize", "Generalized"),
    ("treatment.dateShift", "Date shifted"),
    ("dataset.identifiers", "Identifiers published on purpose"),
    (
        "identifiers.intro",
        "The publisher declares that these fields publish identifiers, and why:",
    ),
    ("identifiers.kinds", "Kinds"),
    ("identifiers.justification", "Justification"),
    ("dataset.risk", "Re-identification risk"),
    ("risk.smallest_group", "Smallest group"),
    ("risk.groups", "Groups"),
    ("risk.highest", "Highest prosecutor risk"),
    ("risk.average", "Average prosecutor risk"),
    ("risk.threshold", "Threshold"),
    ("risk.at_risk", "Records above the threshold"),
    ("dataset.preview", "Preview"),
    ("preview.caption", "The first {n} rows of data.csv.gz"),
    (
        "preview.conditional",
        "Data open on conditions has no preview.",
    ),
    ("preview.none", "This dataset has no CSV file to preview."),
    ("preview.unavailable", "The preview is not available now."),
    ("preview.empty", "The file has no rows."),
    ("dataset.use", "Use it from code"),
    ("snippet.curl", "Download and verify with curl"),
    ("snippet.ckanapi", "Metadata with ckanapi (CKAN API)"),
    ("snippet.dcat", "DCAT-AP catalogue (JSON-LD)"),
    ("snippet.json", "Dataset metadata (JSON)"),
    ("error.title", "There is a problem with the request"),
    ("error.unknown", "{name} is not a parameter of this page."),
    ("error.repeated", "{name} is given more than once."),
    (
        "error.invalid",
        "{name} cannot be “{value}”; the values are: {allowed}.",
    ),
    ("error.too_long", "{name} is longer than {max} characters."),
    ("error.parameter", "The parameter"),
    ("error.back", "Back to datasets"),
    ("notfound.title", "Dataset not found"),
    (
        "notfound.body",
        "There is no dataset {id} on this portal; it may have been withdrawn.",
    ),
    ("unavailable.title", "The portal cannot answer now"),
    ("unavailable.body", "Please try again in a moment."),
    ("restoring.title", "The files are being restored"),
    (
        "restoring.body",
        "This portal's data was recovered from another node and this dataset's files are still being restored. Please download them again later.",
    ),
    ("footer.machine", "Machine-readable"),
    ("footer.about", "Served by govdc hub node {node}."),
    ("nav.departments", "Departments"),
    ("sort.downloads", "Most downloaded"),
    ("home.popular", "Most downloaded"),
    ("home.popular_empty", "Nothing has been downloaded yet."),
    ("card.downloads", "{n} downloads"),
    ("dataset.downloads", "Downloads"),
    ("dataset.frequency", "Update frequency"),
    ("dataset.timeliness", "Timeliness"),
    (
        "timeliness.irregular",
        "Updated irregularly: no schedule to keep",
    ),
    (
        "timeliness.on_time",
        "On time: the next version is due by {due}",
    ),
    (
        "timeliness.overdue",
        "Overdue: a new version was due by {due}",
    ),
    ("frequency.irregular", "Irregular"),
    ("frequency.hourly", "Hourly"),
    ("frequency.daily", "Daily"),
    ("frequency.weekly", "Weekly"),
    ("frequency.monthly", "Monthly"),
    ("frequency.quarterly", "Quarterly"),
    ("frequency.half_yearly", "Every six months"),
    ("frequency.yearly", "Yearly"),
    ("frequency.rarely", "Less than once a year"),
    ("dataset.history", "Version history"),
    ("history.version", "Version"),
    ("history.change", "Change"),
    ("history.at", "When"),
    ("history.records", "Records"),
    ("history.content", "Content digest (SHA-256)"),
    ("history.quality", "Metadata quality"),
    ("change.publish", "Published"),
    ("change.unpublish", "Withdrawn"),
    ("dataset.quality", "Metadata quality"),
    ("quality.score", "{score} of {max} points ({rating})"),
    (
        "quality.intro",
        "Assessed when the version was published, in the five dimensions of data.europa.eu's Metadata Quality Assessment (MQA).",
    ),
    ("quality.dimension", "Dimension"),
    ("quality.points", "Points"),
    ("quality.missing", "Missing"),
    ("quality.complete", "Nothing missing"),
    ("quality.findability", "Findability"),
    ("quality.accessibility", "Accessibility"),
    ("quality.interoperability", "Interoperability"),
    ("quality.reusability", "Reusability"),
    ("quality.contextuality", "Contextuality"),
    ("rating.excellent", "Excellent"),
    ("rating.good", "Good"),
    ("rating.sufficient", "Sufficient"),
    ("rating.bad", "Bad"),
    ("quality.check.keywords", "Keywords (tags)"),
    ("quality.check.category", "A category of the plan"),
    (
        "quality.check.description",
        "A description of at least 20 characters",
    ),
    ("quality.check.frequency", "An update frequency"),
    ("quality.check.access_url", "A dataset page (access URL)"),
    ("quality.check.download_url", "Download URLs"),
    (
        "quality.check.open_download",
        "Downloads open without an application",
    ),
    ("quality.check.format", "File format"),
    ("quality.check.media_type", "Media type"),
    (
        "quality.check.format_vocabulary",
        "Format from a controlled vocabulary",
    ),
    ("quality.check.non_proprietary", "Non-proprietary format"),
    ("quality.check.machine_readable", "Machine-readable format"),
    ("quality.check.dcat_ap", "DCAT-AP compliance"),
    ("quality.check.license", "Licence"),
    (
        "quality.check.license_vocabulary",
        "Licence from the SPDX vocabulary",
    ),
    ("quality.check.access_rights", "Access rights (openness)"),
    (
        "quality.check.access_rights_vocabulary",
        "Access rights from a controlled vocabulary",
    ),
    (
        "quality.check.field_documentation",
        "Every field documented",
    ),
    ("quality.check.publisher", "Publisher"),
    ("quality.check.record_count", "Record count"),
    ("quality.check.byte_size", "File sizes"),
    ("quality.check.issued", "Date of issue"),
    ("quality.check.version", "Version number"),
    ("departments.title", "Departments"),
    (
        "departments.intro",
        "Each department's open datasets, on-time update rate and metadata quality, ranked by mean metadata quality.",
    ),
    ("departments.rank", "Rank"),
    ("departments.department", "Department"),
    ("departments.datasets", "Datasets"),
    ("departments.quality", "Mean metadata quality"),
    ("departments.on_time", "On-time update rate"),
    ("departments.downloads", "Downloads"),
    (
        "departments.none",
        "No department has published a dataset yet.",
    ),
    (
        "department.on_time",
        "{rate} ({on} of {of} scheduled datasets on time)",
    ),
    (
        "department.no_schedule",
        "No dataset with an update schedule",
    ),
    ("department.datasets", "Its datasets"),
    (
        "department.search",
        "Filter the catalogue by this department",
    ),
    ("department.code", "Unified social credit code"),
    ("department.notfound", "No such department"),
    (
        "department.notfound.body",
        "No department with the credit code {code} publishes datasets on this portal.",
    ),
    ("nav.changes", "Changes"),
    ("changes.title", "Changes"),
    (
        "changes.intro",
        "Every publication and withdrawal of a dataset, newest first.",
    ),
    ("changes.feed", "Subscribe to the Atom feed"),
    ("changes.none", "Nothing has been published yet."),
    (
        "changes.caption",
        "Publications and withdrawals of datasets",
    ),
    ("changes.dataset", "Dataset"),
    ("changes.older", "Older changes"),
    ("changes.newest", "Newest changes"),
    ("footer.feed", "Publications (Atom)"),
    ("footer.catalogue_csv", "Whole catalogue (CSV)"),
    ("footer.catalogue_json", "Whole catalogue (JSON)"),
    ("footer.manifest", "Bulk download list (wget -i)"),
    (
        "departments.caption",
        "Departments ranked by the mean metadata quality of their datasets",
    ),
    // Applications for conditional datasets (`super::apply`).
    ("dataset.apply", "Apply for access to this dataset"),
    ("apply.title", "Application for data"),
    ("apply.heading", "Apply for: {title}"),
    (
        "apply.intro",
        "This dataset is open on conditions. The platform operator decides on your application; once it is approved, you collect a download token from the application's status page. The token is shown only once.",
    ),
    ("apply.field.applicant", "Name"),
    ("apply.field.organisation", "Organisation"),
    ("apply.field.purpose", "Purpose"),
    ("apply.field.contact", "Contact"),
    ("apply.hint.applicant", "The applicant's full name."),
    (
        "apply.hint.organisation",
        "The full name of the applicant's organisation.",
    ),
    (
        "apply.hint.purpose",
        "What the data is for, how widely it will be used and for how long (at least 10 characters).",
    ),
    (
        "apply.hint.contact",
        "An e-mail address or a telephone number where the operator can reach you.",
    ),
    ("apply.submit", "Send the application"),
    ("apply.problems", "There is a problem"),
    ("apply.problem.missing", "Enter the {field}."),
    (
        "apply.problem.too_long",
        "The {field} must be {max} characters or fewer.",
    ),
    (
        "apply.problem.too_short",
        "The {field} must be at least {min} characters.",
    ),
    (
        "apply.problem.control",
        "The {field} contains control characters.",
    ),
    (
        "apply.problem.contact",
        "Enter an e-mail address or a telephone number.",
    ),
    (
        "apply.unconditional",
        "This dataset is open to all: anyone may download it without applying.",
    ),
    (
        "apply.full",
        "Too many applications are waiting for a decision. Try again later.",
    ),
    ("csrf.title", "The form has expired"),
    (
        "csrf.body",
        "To protect your application, this submission was not accepted. Go back to the form, reload it and send it again.",
    ),
    ("application.title", "Application status"),
    (
        "application.keep",
        "Keep the link to this page: it is the only way back to your application and its download token.",
    ),
    ("application.number", "Application number"),
    ("application.dataset", "Dataset"),
    ("application.applicant", "Applicant"),
    ("application.submitted", "Submitted"),
    ("application.state", "Status"),
    ("application.state.pending", "Waiting for a decision"),
    ("application.state.approved", "Approved"),
    ("application.state.rejected", "Rejected"),
    ("application.state.collected", "Token collected"),
    ("application.state.expired", "Expired"),
    (
        "application.pending",
        "This page shows the decision once the platform operator has made it. Come back later.",
    ),
    (
        "application.approved",
        "Your application was approved; the download token is valid until {expires}. It is shown only once: keep it safe as soon as you collect it.",
    ),
    ("application.collect", "Collect the download token"),
    (
        "application.rejected",
        "Your application was rejected, for this reason:",
    ),
    (
        "application.collected",
        "The download token was collected on {at}; this page no longer shows it. If it is lost, apply again.",
    ),
    (
        "application.expired",
        "The approval expired on {at} before the token was collected. Apply again if you still need the data.",
    ),
    (
        "application.gone",
        "The dataset is no longer served: there is no token to collect.",
    ),
    ("application.notfound.title", "No such application"),
    (
        "application.notfound.body",
        "The link is wrong or incomplete. Check the link to the status page you kept.",
    ),
    ("token.title", "Your download token"),
    (
        "token.once",
        "This is the only time the token is shown: copy it now and keep it safe. Visiting this page again only shows that it was collected.",
    ),
    ("token.label", "Download token"),
    ("token.expires", "Valid until {expires}."),
    ("token.use", "How to use it"),
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

    /// Every `t("...")` and `fill("...")` key in the templates and the web module is in the tables.
    #[test]
    fn every_key_used_is_in_the_tables() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut sources = Vec::new();
        for dir in ["templates/portal", "src/portal/web"] {
            for file in std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}")) {
                let path = file.map(|f| f.path()).unwrap_or_default();
                sources.push(std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
        let known = keys(ZH);
        let mut used = 0;
        for source in &sources {
            for marker in ["t(\"", "fill(\""] {
                for (at, _) in source.match_indices(marker) {
                    let rest = &source[at + marker.len()..];
                    let key = &rest[..rest.find('"').unwrap_or(0)];
                    // A key is dotted words; anything else is this scanner's own text.
                    let is_key = key.split('.').count() > 1
                        && key.split('.').all(|w| {
                            !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
                        });
                    if is_key {
                        used += 1;
                        assert!(known.contains(key), "{key} is used but in no table");
                    }
                }
            }
        }
        assert!(used > 50, "only {used} keys found: the scan is broken");
    }

    /// Keys the handlers build from names (`quality.check.{key}`, `frequency.{name}`, ...).
    #[test]
    fn every_key_built_from_a_name_is_in_the_tables() {
        use crate::portal::quality::{CHECKS, DIMENSIONS};
        let mut built: Vec<String> = CHECKS
            .iter()
            .map(|c| format!("quality.check.{}", c.key))
            .collect();
        built.extend(DIMENSIONS.iter().map(|d| format!("quality.{d}")));
        built.extend(
            ["excellent", "good", "sufficient", "bad"]
                .iter()
                .map(|r| format!("rating.{r}")),
        );
        built.extend(
            [
                0,
                60,
                86_400,
                7 * 86_400,
                31 * 86_400,
                92 * 86_400,
                184 * 86_400,
                365 * 86_400,
                999 * 86_400,
            ]
            .iter()
            .map(|s| format!("frequency.{}", crate::portal::timeliness::frequency(*s))),
        );
        let known = keys(ZH);
        for key in &built {
            assert!(
                known.contains(key.as_str()),
                "{key} is built but in no table"
            );
        }
    }

    #[test]
    fn language_negotiation() {
        assert_eq!(Lang::from_accept_language(""), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en-GB,en;q=0.9"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("fr, en;q=0.5, zh;q=0.8"),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language("de, en;q=0.1"), Lang::En);
        assert_eq!(Lang::from_accept_language("en;q=0, zh-TW;q=0.2"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("fr"), Lang::Zh);
        assert_eq!(Lang::from_param("EN"), Some(Lang::En));
        assert_eq!(Lang::from_param("zh-CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_param("fr"), None);
    }

    #[test]
    fn every_plan_category_has_both_names() {
        assert_eq!(CATEGORIES.len(), 20);
        assert_eq!(Lang::Zh.category("credit"), "信用");
        assert_eq!(Lang::En.category("credit"), "Credit");
        assert_eq!(Lang::En.category("unlisted"), "unlisted");
    }
}
