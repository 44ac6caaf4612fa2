//! Datasets the website's tests publish on a real hub: real gzip CSV files (Chinese text, a
//! byte-order mark, quoted commas and line breaks), several departments and categories, a
//! conditional dataset, one with declared identifiers and risk figures, and one whose title,
//! description and tags are HTML and script.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;

use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{
    DatasetField, DatasetMetadata, FileChunk, FileEnd, Openness, PublishDatasetRequest,
    ReidentificationRisk,
};
use govdc_test_support::hub::HubProcess;
use sha2::Digest;

use crate::common::{channel, credit_code};

/// The dataset whose title, description and tags are HTML and script.
pub const HOSTILE: &str = "test-web.hostile";
/// A Chinese-text dataset with a byte-order mark.
pub const BUS: &str = "hz-transport.bus-stops";
/// A conditional dataset (有条件开放).
pub const CLINICS: &str = "zj-health.clinics";
/// A dataset with declared identifiers and re-identification risk.
pub const PENALTIES: &str = "hz-credit.penalties";
/// The hostile title.
pub const HOSTILE_TITLE: &str =
    "<script>window.__xss = 1</script><b>Bold</b> & \"quoted\" 'single' 测试";

/// A published dataset: its id and the CSV text it was published with.
pub struct Published {
    pub id: String,
    pub csv: String,
}

pub fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// A CSV of `rows` rows: `header`, then `row(i)` for each i.
pub fn csv(header: &str, rows: usize, row: impl Fn(usize) -> String) -> String {
    let mut text = String::with_capacity(rows * 40);
    text.push_str(header);
    text.push('\n');
    for i in 0..rows {
        text.push_str(&row(i));
        text.push('\n');
    }
    text
}

struct Spec {
    id: &'static str,
    title: &'static str,
    description: &'static str,
    category: &'static str,
    department: (u32, &'static str),
    tags: &'static [&'static str],
    license: &'static str,
    openness: Openness,
    csv: String,
    json: bool,
    fields: Vec<DatasetField>,
    risk: Option<ReidentificationRisk>,
}

fn field(name: &str, treatment: &str, description: &str) -> DatasetField {
    DatasetField {
        name: name.to_owned(),
        treatment: treatment.to_owned(),
        description: description.to_owned(),
        ..Default::default()
    }
}

const DISTRICTS: &[&str] = &["上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区"];

fn specs() -> Vec<Spec> {
    let hostile_csv = csv("name,note", 3, |i| {
        format!("\"<b>row {i}</b>\",\"<script>x</script>\"")
    });
    let plain = |rows: usize, what: &'static str| {
        csv("编号,名称,区县", rows, move |i| {
            format!("{i},{what}{i},{}", DISTRICTS[i % DISTRICTS.len()])
        })
    };
    vec![
        Spec {
            id: HOSTILE,
            title: HOSTILE_TITLE,
            description: "<img src=x onerror=\"window.__xss = 2\"> </textarea><a href=\"javascript:alert(1)\">link</a>",
            category: "statistics",
            department: (9, "<i>测试部门</i>"),
            tags: &["<script>tag</script>", "x\" onmouseover=\"window.__xss=3"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            csv: hostile_csv,
            json: false,
            fields: vec![field("name", "keep", "<em>name</em>")],
            risk: None,
        },
        Spec {
            id: "zj-stats.population",
            title: "浙江省常住人口统计",
            description: "各市、县（市、区）年末常住人口，按性别和年龄组分列。",
            category: "statistics",
            department: (5, "浙江省统计局"),
            tags: &["人口", "年度"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            csv: plain(90, "统计单元"),
            json: true,
            fields: vec![field("名称", "keep", "统计单元名称")],
            risk: None,
        },
        Spec {
            id: "hz-hrss.jobs",
            title: "杭州市招聘岗位信息",
            description: "人力资源市场登记的招聘岗位，含岗位类别、学历要求和薪酬区间。",
            category: "employment",
            department: (6, "杭州市人力资源和社会保障局"),
            tags: &["就业", "招聘"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            csv: plain(400, "岗位"),
            json: true,
            fields: vec![field("名称", "keep", "岗位名称")],
            risk: None,
        },
        Spec {
            id: "hz-hrss.pension-points",
            title: "杭州市社保经办网点",
            description: "社会保险经办服务网点的地址和办理时间。",
            category: "social-security",
            department: (6, "杭州市人力资源和社会保障局"),
            tags: &["社保", "网点"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            csv: plain(60, "网点"),
            json: false,
            fields: vec![field("名称", "keep", "网点名称")],
            risk: None,
        },
        Spec {
            id: "zj-nr.parcels",
            title: "浙江省自然资源地块公示",
            description: "国有建设用地供应地块的位置、面积和用途。",
            category: "natural-resources",
            department: (7, "浙江省自然资源厅"),
            tags: &["地块", "国土"],
            license: "ODbL-1.0",
            openness: Openness::Unconditional,
            csv: plain(150, "地块"),
            json: true,
            fields: vec![field("名称", "keep", "地块编号")],
            risk: None,
        },
        Spec {
            id: "hz-culture.libraries",
            title: "杭州市公共图书馆名录",
            description: "公共图书馆及分馆的名称、地址和开放时间。",
            category: "culture",
            department: (8, "杭州市文化广电旅游局"),
            tags: &["图书馆", "公共文化"],
            license: "CC0-1.0",
            openness: Openness::Unconditional,
            csv: plain(80, "图书馆"),
            json: false,
            fields: vec![field("名称", "keep", "图书馆名称")],
            risk: None,
        },
        Spec {
            id: "hz-edu.schools",
            title: "杭州市中小学校名录",
            description: "全市公办和民办中小学校的名称、学段和所在区县。",
            category: "education",
            department: (4, "杭州市教育局"),
            tags: &["学校", "教育"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            csv: plain(700, "学校"),
            json: true,
            fields: vec![field("名称", "keep", "学校名称")],
            risk: None,
        },
        Spec {
            id: "zj-weather.daily",
            title: "浙江省逐日气象观测",
            description: "国家级地面气象观测站的逐日气温、降水和风速。",
            category: "weather",
            department: (10, "浙江省气象局"),
            tags: &["气象", "观测"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            csv: csv(
                "站号,日期,最高气温,最低气温,降水量",
                3000,
                |i| {
                    format!(
                        "58457,2026-{:02}-{:02},{}.{},{}.{},{}.{}",
                        1 + i % 12,
                        1 + i % 28,
                        10 + i % 20,
                        i % 10,
                        i % 15,
                        i % 10,
                        i % 7,
                        i % 10
                    )
                },
            ),
            json: true,
            fields: vec![field("站号", "keep", "气象站编号")],
            risk: None,
        },
        Spec {
            id: PENALTIES,
            title: "杭州市行政处罚信息",
            description: "市场监管领域行政处罚决定书的公示信息。\n\n企业联系电话依据《企业信息公示暂行条例》公开。",
            category: "credit",
            department: (3, "杭州市市场监督管理局"),
            tags: &["信用", "行政处罚"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            csv: csv(
                "决定书文号,当事人,联系电话,处罚日期",
                500,
                |i| {
                    format!(
                        "杭市监罚〔2026〕{i}号,杭州某某贸易有限公司{i},0571-8{:07},2026-03-{:02}",
                        i,
                        1 + i % 28
                    )
                },
            ),
            json: true,
            fields: vec![
                field("决定书文号", "keep", "处罚决定书编号"),
                DatasetField {
                    name: "联系电话".to_owned(),
                    treatment: "keep".to_owned(),
                    description: "企业登记的联系电话".to_owned(),
                    declared_identifiers: vec!["mobilePhone".to_owned()],
                    identifier_justification: "企业登记的联系电话依法公示".to_owned(),
                },
                field("处罚日期", "generalize", "精确到月"),
            ],
            risk: Some(ReidentificationRisk {
                smallest_group: 5,
                groups: 96,
                highest_prosecutor_risk_percent: 20.0,
                average_prosecutor_risk_percent: 4.25,
                threshold_percent: 20.0,
                records_at_risk: 0,
            }),
        },
        Spec {
            id: CLINICS,
            title: "浙江省医疗机构执业登记",
            description: "医疗机构执业许可证的登记信息，含机构类别和诊疗科目。",
            category: "medical",
            department: (2, "浙江省卫生健康委员会"),
            tags: &["医疗", "执业许可"],
            license: "CC-BY-4.0",
            openness: Openness::Conditional,
            csv: plain(300, "医疗机构"),
            json: true,
            fields: vec![field("名称", "keep", "机构名称")],
            risk: None,
        },
        Spec {
            id: "hz-market.enterprises",
            title: "杭州市企业登记信息",
            description: "在杭州市登记的企业的名称、统一社会信用代码、类型、成立日期和登记机关。",
            category: "enterprise-registration",
            department: (3, "杭州市市场监督管理局"),
            tags: &["企业", "登记", "商事主体"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            csv: csv(
                "统一社会信用代码,企业名称,类型,成立日期",
                5000,
                |i| {
                    format!(
                        "91330100MA2{:07}X,杭州{}科技有限公司,有限责任公司,20{:02}-0{}-1{}",
                        i,
                        DISTRICTS[i % 6],
                        10 + i % 15,
                        1 + i % 9,
                        i % 10
                    )
                },
            ),
            json: true,
            fields: vec![field("企业名称", "keep", "登记名称")],
            risk: None,
        },
        Spec {
            id: BUS,
            title: "杭州市公交站点",
            description: "杭州市区公交线路的站点名称、所在区县和经纬度（已泛化到百米）。Bus stops of Hangzhou.",
            category: "transport",
            department: (1, "杭州市交通运输局"),
            tags: &["公交", "站点", "bus"],
            license: "CC-BY-4.0",
            openness: Openness::Unconditional,
            // A byte-order mark, quoted commas, quotes and a line break in a cell.
            csv: format!(
                "\u{feff}{}",
                csv("站点编号,站点名称,区县,备注", 2000, |i| {
                    format!(
                        "{i:05},\"{}站{i}号, 东\",{},\"含\"\"引号\"\"\n第二行 <b>{i}</b> & 更多\"",
                        DISTRICTS[i % 6],
                        DISTRICTS[(i + 1) % 6]
                    )
                })
            ),
            json: true,
            fields: vec![
                field("站点编号", "keep", "站点编号"),
                field("站点名称", "keep", "站点名称"),
            ],
            risk: None,
        },
    ]
}

fn part(part: Part) -> PublishDatasetRequest {
    PublishDatasetRequest { part: Some(part) }
}

fn file_parts(format: &str, data: &[u8]) -> Vec<PublishDatasetRequest> {
    let mut parts: Vec<PublishDatasetRequest> = data
        .chunks(64 * 1024)
        .map(|chunk| {
            part(Part::Chunk(FileChunk {
                format: format.to_owned(),
                data: chunk.to_vec(),
            }))
        })
        .collect();
    parts.push(part(Part::End(FileEnd {
        format: format.to_owned(),
        sha256: sha256(data),
        size: data.len() as i64,
    })));
    parts
}

/// Publishes a dataset with one gzip CSV (and a small JSON file when `json`).
pub async fn publish(hub: &HubProcess, metadata: DatasetMetadata, csv: &str, json: bool) {
    let token = hub.token("admin", "operator").unwrap();
    let mut client =
        PortalClient::with_interceptor(channel(hub), BearerToken::new(&token).unwrap());
    let mut parts = vec![part(Part::Metadata(metadata))];
    parts.extend(file_parts("csv", &gzip(csv)));
    if json {
        parts.extend(file_parts("json", &gzip("[{\"example\":\"1\"}]\n")));
    }
    client
        .publish_dataset(tokio_stream::iter(parts))
        .await
        .unwrap();
}

/// The promised update interval of a fixture dataset: daily weather, weekly bus stops, monthly
/// enterprises, the others irregular.
pub fn update_interval(id: &str) -> i64 {
    const DAY: i64 = 86_400;
    match id {
        "zj-weather.daily" => DAY,
        BUS => 7 * DAY,
        "hz-market.enterprises" => 31 * DAY,
        _ => 0,
    }
}

/// Publishes every fixture dataset, oldest first (the hostile one is the oldest), and returns
/// them newest first, as the portal lists them.
pub async fn seed(hub: &HubProcess) -> Vec<Published> {
    let mut out = Vec::new();
    for spec in specs() {
        let records = csv::Reader::from_reader(spec.csv.as_bytes())
            .records()
            .count() as i64;
        let metadata = DatasetMetadata {
            id: spec.id.to_owned(),
            title: spec.title.to_owned(),
            description: spec.description.to_owned(),
            category: spec.category.to_owned(),
            openness: spec.openness as i32,
            license: spec.license.to_owned(),
            tags: spec.tags.iter().map(|t| (*t).to_owned()).collect(),
            organization_credit_code: credit_code(spec.department.0),
            organization_name: spec.department.1.to_owned(),
            version: 1,
            record_count: records,
            fields: spec.fields,
            content_sha256: sha256(spec.csv.as_bytes()),
            risk: spec.risk,
            update_interval_seconds: update_interval(spec.id),
        };
        publish(hub, metadata, &spec.csv, spec.json).await;
        out.push(Published {
            id: spec.id.to_owned(),
            csv: spec.csv,
        });
        // Distinct publication times, so that "newest" is one order.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    out.reverse();
    out
}
