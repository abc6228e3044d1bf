//! Makes a marketplace catalogue from real Fashion-MNIST items, to try `wardrobe import` and the
//! review loop without photos of your own. Categories are the shop's own, not Fashion-MNIST's
//! ten: tops and shirts are one category, sandals, sneakers and boots another.
//!
//! ```text
//! catalogue photos  --split train --from 0 --count 10000 --out cat [--colour]
//!     seller photos in one folder per category (the folder name is the category)
//! catalogue uploads --split test --from 0 --count 1000 --out new [--colour]
//!     unlabelled uploads in one folder, and new.truth.csv (path,category) beside it
//! catalogue score  labels.csv new.truth.csv          accuracy of a labels file
//! catalogue review labels.csv new.truth.csv          a simulated reviewer: fills reviewed_label
//!                                                    of the rows that need review with the truth
//! ```

mod render;

use render::CATEGORIES;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use wardrobe::data::dataset::{DEFAULT_DATA_DIR, Dataset, Split};

fn arg<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn items(args: &[String]) -> (Dataset, usize, usize, PathBuf, bool) {
    let split = if arg(args, "--split") == Some("test") { Split::Test } else { Split::Train };
    let dir = arg(args, "--data").unwrap_or(DEFAULT_DATA_DIR);
    let data = Dataset::load_split(Path::new(dir), split).expect("Fashion-MNIST loads");
    let from: usize = arg(args, "--from").unwrap_or("0").parse().expect("--from N");
    let count: usize = arg(args, "--count").unwrap_or("1000").parse().expect("--count N");
    let out = PathBuf::from(arg(args, "--out").expect("--out DIR"));
    assert!(from + count <= data.len(), "only {} items", data.len());
    (data, from, count, out, args.iter().any(|a| a == "--colour"))
}

/// Reads `path,value` rows of a CSV with a header into a map.
fn read_pairs(path: &str, value_column: &str) -> HashMap<String, String> {
    let mut reader = csv::Reader::from_path(path).expect("CSV opens");
    let header = reader.headers().unwrap().clone();
    let column = header.iter().position(|h| h == value_column).expect("column present");
    reader.records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), r[column].to_string())).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("photos") => {
            let (data, from, count, out, colour) = items(&args);
            for i in from..from + count {
                let category = CATEGORIES[data.labels[i] as usize];
                render::write_photo_as(data.image(i), i, &out.join(category), colour);
            }
            println!("{count} photos in {}", out.display());
        }
        Some("uploads") => {
            let (data, from, count, out, colour) = items(&args);
            let mut truth = csv::Writer::from_path(out.with_extension("truth.csv")).expect("truth file");
            truth.write_record(["path", "category"]).unwrap();
            for i in from..from + count {
                let path = render::write_photo_as(data.image(i), i, &out, colour);
                let path = std::path::absolute(path).unwrap();
                truth.write_record([path.to_str().unwrap(), CATEGORIES[data.labels[i] as usize]]).unwrap();
            }
            println!("{count} uploads in {}, truth in {}", out.display(), out.with_extension("truth.csv").display());
        }
        Some("score") => {
            let (labels, truth) = (read_pairs(&args[1], "label"), read_pairs(&args[2], "category"));
            let right = labels.iter().filter(|(path, label)| truth.get(*path) == Some(label)).count();
            println!("accuracy {:.4} ({right} of {} photos)", right as f64 / labels.len() as f64, labels.len());
        }
        Some("review") => {
            let truth = read_pairs(&args[2], "category");
            let mut reader = csv::Reader::from_path(&args[1]).expect("labels open");
            let header = reader.headers().unwrap().clone();
            let col = |name: &str| header.iter().position(|h| h == name).unwrap();
            let (review, reviewed) = (col("needs_review"), col("reviewed_label"));
            let mut rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
            let mut filled = 0;
            for row in rows.iter_mut().filter(|r| &r[review] == "true") {
                let mut fields: Vec<String> = row.iter().map(String::from).collect();
                fields[reviewed] = truth[&fields[0]].clone();
                *row = csv::StringRecord::from(fields);
                filled += 1;
            }
            let mut w = csv::Writer::from_path(&args[1]).unwrap();
            w.write_record(&header).unwrap();
            rows.iter().for_each(|r| w.write_record(r).unwrap());
            println!("reviewed {filled} of {} rows", rows.len());
        }
        _ => eprintln!(
            "usage: catalogue photos|uploads --split train|test --from N --count N --out DIR [--colour] | score|review LABELS TRUTH"
        ),
    }
}
