//! Benchmark: de-identification of N rows × 10 fields (default 1,000,000) beside a floor measured in
//! the same run on the same file — a bare read and write of it with the same csv crate and the
//! same gzip.
//!
//! ```sh
//! cargo bench -p govdc-operator --bench deidentify -- [--rows N] [--runs R]
//! ```
//!
//! Each phase runs in a child process of its own (this binary again, with `--phase`), so that the
//! peak memory printed (VmHWM from /proc/self/status) is that phase's alone. With `--runs R` each
//! phase runs R times and the fastest is printed.
//!
//! - `floor csv`: read every record (csv, UTF-8 checked, as the de-identification does), write it
//!   unchanged as CSV through gzip (default level) to a file. One pass.
//! - `deidentify csv`: the same file through [`Plan::run`] with a realistic rule set (below) and
//!   k-anonymity (k = 5, suppression on): a first pass counting the groups of quasi-identifiers,
//!   a second applying the rules, scanning every published value for personal identifiers (the
//!   content gate) and writing gzip CSV, with the SHA-256 of the output.
//! - `deidentify csv-ungated`: the same without the content gate, to say what the gate costs
//!   (and `deidentify-no-output-ungated` beside `deidentify-no-output`, without gzip's noise).
//! - `floor csv+json` and `deidentify csv+json`: the same, writing both downloads.
//! - `floor read` and `deidentify no-output`: the cost of the rules alone, without gzip (which
//!   dominates the phases above): a bare read of every record against both de-identification
//!   passes with every rule applied and nothing written.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use govdc_crds::open_dataset::{DatasetField, KAnonymity};
use govdc_crds::validation::resident_id;
use govdc_operator::deid::{Outputs, Plan};
use serde_json::json;

const KEY: &[u8] = b"bench dataset key, 32 bytes long";
const PHASES: [&str; 8] = [
    "floor-read",
    "deidentify-no-output-ungated",
    "deidentify-no-output",
    "floor-csv",
    "deidentify-csv-ungated",
    "deidentify-csv",
    "floor-csv+json",
    "deidentify-csv+json",
];

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(phase) = flag(&args, "--phase") {
        let input = PathBuf::from(flag(&args, "--input").ok_or("--input")?);
        return child(&phase, &input);
    }
    let rows: u64 = flag(&args, "--rows").map_or(Ok(1_000_000), |r| r.parse())?;
    let runs: usize = flag(&args, "--runs").map_or(Ok(1), |r| r.parse())?;

    let dir = std::env::temp_dir().join(format!("govdc-deidentify-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("source.csv");
    let started = Instant::now();
    generate(&input, rows)?;
    let size = std::fs::metadata(&input)?.len();
    println!(
        "generated {rows} rows × 10 fields, {:.1} MiB of CSV, in {:.1} s",
        size as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    for phase in PHASES {
        let mut best: Option<Measured> = None;
        for _ in 0..runs {
            let measured = spawn(phase, &input)?;
            if best.as_ref().is_none_or(|b| measured.seconds < b.seconds) {
                best = Some(measured);
            }
        }
        results.push((phase, best.ok_or("no run")?));
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!(
        "| phase | rows in | rows out | seconds | rows/s | ratio to floor | peak memory | output (gzip) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, (phase, m)) in results.iter().enumerate() {
        // Each de-identification phase follows its floor.
        let floor = results[..=i]
            .iter()
            .rev()
            .find(|(p, _)| p.starts_with("floor"))
            .map(|(_, f)| f)
            .ok_or("no floor")?;
        let ratio = if phase.starts_with("floor") {
            "floor".to_owned()
        } else {
            format!("{:.2}×", m.seconds / floor.seconds)
        };
        println!(
            "| {phase} | {rows} | {} | {:.2} | {:.0} | {ratio} | {:.1} MiB | {:.1} MiB |",
            m.rows_out,
            m.seconds,
            rows as f64 / m.seconds,
            m.peak_kib as f64 / 1024.0,
            m.output_bytes as f64 / 1048576.0,
        );
    }
    let seconds = |name: &str| {
        results
            .iter()
            .find(|(p, _)| *p == name)
            .map(|(_, m)| m.seconds)
    };
    println!();
    for phase in ["deidentify-no-output", "deidentify-csv"] {
        if let (Some(gated), Some(ungated)) = (seconds(phase), seconds(&format!("{phase}-ungated")))
        {
            println!(
                "content gate: {phase} {gated:.2} s with it, {ungated:.2} s without: {:+.1} %",
                100.0 * (gated / ungated - 1.0)
            );
        }
    }
    println!();
    println!(
        "target: de-identification (with its content gate) within 1.5× of the floor; the gate adds at most 20 % to deidentify-csv"
    );
    Ok(())
}

struct Measured {
    seconds: f64,
    rows_out: u64,
    peak_kib: u64,
    output_bytes: u64,
}

fn spawn(phase: &str, input: &Path) -> Result<Measured, Box<dyn std::error::Error>> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--phase", phase, "--input"])
        .arg(input)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| {
            format!(
                "phase {phase} failed: {}{}",
                stdout,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [seconds, rows_out, peak_kib, output_bytes] = fields[..] else {
        return Err(format!("phase {phase}: unexpected {line:?}").into());
    };
    Ok(Measured {
        seconds: seconds.parse()?,
        rows_out: rows_out.parse()?,
        peak_kib: peak_kib.parse()?,
        output_bytes: output_bytes.parse()?,
    })
}

/// A phase, in its own process: prints `RESULT seconds rows_out peak_kib output_bytes`.
fn child(phase: &str, input: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir = input.parent().ok_or("input has no directory")?;
    let csv_path = dir.join(format!("{phase}.csv.gz"));
    let json_path = dir.join(format!("{phase}.json.gz"));
    let with_csv = phase.contains("csv");
    let with_json = phase.ends_with("+json");
    let started = Instant::now();
    let rows_out = if phase.starts_with("floor") {
        floor(
            input,
            with_csv.then_some(csv_path.as_path()),
            with_json.then_some(json_path.as_path()),
        )?
    } else {
        let plan = if phase.ends_with("-ungated") {
            plan()?.without_content_gate_for_benchmarks()
        } else {
            plan()?
        };
        let mut csv = with_csv
            .then(|| File::create(&csv_path).map(BufWriter::new))
            .transpose()?;
        let mut json = with_json
            .then(|| File::create(&json_path).map(BufWriter::new))
            .transpose()?;
        let report = plan.run(
            || File::open(input),
            Outputs {
                csv: csv.as_mut().map(|c| c as &mut dyn Write),
                json: json.as_mut().map(|j| j as &mut dyn Write),
            },
        )?;
        for sink in [csv.as_mut(), json.as_mut()].into_iter().flatten() {
            sink.flush()?;
        }
        eprintln!("{report}");
        report.rows_written
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut output_bytes = 0;
    for (written, path) in [(with_csv, &csv_path), (with_json, &json_path)] {
        if written {
            output_bytes += std::fs::metadata(path)?.len();
        }
    }
    let _ = std::fs::remove_file(&csv_path);
    let _ = std::fs::remove_file(&json_path);
    println!("RESULT {seconds} {rows_out} {} {output_bytes}", peak_kib()?);
    Ok(())
}

/// The floor: every record read and written back unchanged, through the same csv crate, gzip
/// level and buffer sizes as the de-identification; JSON written as it does, every value a string;
/// with neither, only read.
fn floor(input: &Path, csv_path: Option<&Path>, json_path: Option<&Path>) -> io::Result<u64> {
    let mut reader = csv::ReaderBuilder::new()
        .buffer_capacity(64 * 1024)
        .from_reader(File::open(input)?);
    let header = reader.headers()?.clone();
    let gzip = |path: &Path| -> io::Result<_> {
        Ok(GzEncoder::new(
            BufWriter::new(File::create(path)?),
            Compression::default(),
        ))
    };
    let mut csv = csv_path
        .map(|p| {
            gzip(p).map(|g| {
                csv::WriterBuilder::new()
                    .buffer_capacity(64 * 1024)
                    .from_writer(g)
            })
        })
        .transpose()?;
    if let Some(csv) = csv.as_mut() {
        csv.write_record(&header)?;
    }
    let mut json = json_path
        .map(|p| gzip(p).map(|g| BufWriter::with_capacity(64 * 1024, g)))
        .transpose()?;
    if let Some(json) = json.as_mut() {
        json.write_all(b"[")?;
    }
    let mut record = csv::StringRecord::new();
    let mut rows = 0u64;
    while reader.read_record(&mut record)? {
        if let Some(csv) = csv.as_mut() {
            csv.write_record(&record)?;
        }
        if let Some(json) = json.as_mut() {
            json.write_all(if rows == 0 { b"\n" } else { b",\n" })?;
            for (i, (name, value)) in header.iter().zip(record.iter()).enumerate() {
                json.write_all(if i == 0 { b"{" } else { b"," })?;
                serde_json::to_writer(&mut *json, name)?;
                json.write_all(b":")?;
                serde_json::to_writer(&mut *json, value)?;
            }
            json.write_all(b"}")?;
        }
        rows += 1;
    }
    if let Some(csv) = csv {
        csv.into_inner()
            .map_err(|e| e.into_error())?
            .finish()?
            .flush()?;
    }
    if let Some(mut json) = json {
        json.write_all(b"\n]\n")?;
        json.into_inner()
            .map_err(|e| e.into_error())?
            .finish()?
            .flush()?;
    }
    Ok(rows)
}

/// A realistic rule set for a medical-visits dataset: identity number pseudonymized, name and
/// phone masked, birth date and region generalized, visit date shifted, amount banded; birth
/// year, sex and city are the quasi-identifiers, k = 5 with suppression.
fn plan() -> Result<Plan, Box<dyn std::error::Error>> {
    let fields: Vec<DatasetField> = serde_json::from_value(json!([
        {"name": "id", "personal": true, "action": "pseudonymize"},
        {"name": "name", "personal": true, "action": "mask", "mask": {"keepFirst": 1}},
        {"name": "phone", "personal": true, "action": "mask", "mask": {"keepFirst": 3, "keepLast": 4}},
        {"name": "birth_date", "personal": true, "action": "generalize", "generalize": {"date": "year"}},
        {"name": "sex", "action": "keep"},
        {"name": "region", "action": "generalize", "generalize": {"regionPrefix": 4}},
        {"name": "visit_date", "action": "dateShift", "dateShift": {"maxDays": 30}},
        {"name": "diagnosis", "action": "keep"},
        {"name": "amount", "action": "generalize", "generalize": {"numberBand": 100}},
        {"name": "hospital", "action": "keep"},
    ]))?;
    let quasi = ["birth_date", "sex", "region"].map(str::to_owned);
    let k = KAnonymity {
        min_k: 5,
        suppress_rare_groups: true,
        max_suppressed_percent: None,
        min_l: None,
    };
    Ok(Plan::new(&fields, &quasi, &[], Some(&k), Some(KEY))?)
}

/// Peak resident memory of this process, KiB.
fn peak_kib() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmHWM in /proc/self/status"))
}

/// SplitMix64: deterministic rows without a random source.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

const REGIONS: [&str; 20] = [
    "110101", "110105", "310101", "310104", "330102", "330106", "330108", "330203", "440103",
    "440305", "510104", "510107", "420102", "420111", "320102", "320106", "370102", "370202",
    "610103", "610113",
];
const SURNAMES: [&str; 10] = ["王", "李", "张", "刘", "陈", "杨", "欧阳", "赵", "黄", "周"];
const GIVEN: [&str; 8] = ["伟", "芳", "娜", "秀英", "敏", "静", "强", "磊"];
const DIAGNOSES: [&str; 6] = ["J45.9", "I10", "E11.9", "K29.7", "M54.5", "J06.9"];
const HOSPITALS: [&str; 4] = [
    "浙江大学医学院附属第一医院",
    "杭州市第一人民医院",
    "北京协和医院",
    "四川大学华西医院",
];

/// Writes `rows` rows of the 10 fields. The span of birth years grows with the rows (up to 50), so
/// that groups of quasi-identifiers stay around 1,000 records or more at any size and suppression
/// stays small.
fn generate(path: &Path, rows: u64) -> io::Result<()> {
    let mut rng = Rng(42);
    let years = (rows / 20_000).clamp(1, 50);
    let mut out = csv::Writer::from_writer(BufWriter::new(File::create(path)?));
    out.write_record([
        "id",
        "name",
        "phone",
        "birth_date",
        "sex",
        "region",
        "visit_date",
        "diagnosis",
        "amount",
        "hospital",
    ])?;
    for _ in 0..rows {
        let region = REGIONS[rng.below(20) as usize];
        let born = format!(
            "{}-{:02}-{:02}",
            1950 + rng.below(years),
            1 + rng.below(12),
            1 + rng.below(28)
        );
        let sequence = rng.below(1000);
        let mut id = format!("{region}{}{sequence:03}", born.replace('-', ""));
        id.push(resident_id::check_character(id.as_bytes()));
        let name = format!(
            "{}{}",
            SURNAMES[rng.below(10) as usize],
            GIVEN[rng.below(8) as usize]
        );
        let phone = format!("1{}{:09}", 3 + rng.below(7), rng.below(1_000_000_000));
        let sex = if sequence % 2 == 1 { "M" } else { "F" };
        let visit = format!("2024-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
        let amount = format!("{}.{:02}", rng.below(5000), rng.below(100));
        out.write_record([
            id.as_str(),
            &name,
            &phone,
            &born,
            sex,
            region,
            &visit,
            DIAGNOSES[rng.below(6) as usize],
            &amount,
            HOSPITALS[rng.below(4) as usize],
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error())?.flush()
}
