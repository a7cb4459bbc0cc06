mod common;
use shmproc::process::{Process, StartMethod};

fn smoke() {
    for m in [StartMethod::Spawn, StartMethod::ForkServer, StartMethod::Fork] {
        let mut p = Process::builder().start_method(m).target(|| println!("hello"));
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0, "{m}");
        let mut p = Process::builder().start_method(m).function(|x: u32| -> () { std::process::exit(x as i32) }, 7u32);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 7, "{m}");
    }
}

fn main() {
    shmproc::init();
    common::run(&[("smoke", smoke)]);
}
