use covalent::prelude::*;

#[electron(files = [
    stage_in("s3://bucket/data.csv", "data.csv"),
    stage_in("data/in.csv", "../in.csv"),
    stage_out("out.csv", "https://example.org/upload"),
    copy("a", "b"),
])]
fn staged() -> i64 {
    1
}

fn main() {}
