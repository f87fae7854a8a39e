use covalent::prelude::*;

struct Handle {
    fd: i32,
}

#[electron]
fn read(fd: i32) -> i32 {
    fd
}

#[lattice]
fn workflow(h: Handle) -> i32 {
    read(h.fd)
}

fn main() {}
