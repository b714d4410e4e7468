//! The runtime library as the pod supervisor uses it: in-process, single-threaded (this
//! test has its own main), the container's stdio handed over as fds.
mod oci_support;
use oci_support::*;
use podrun::runtime::{CreateOptions, ExecOptions, Runtime, Status};
use std::io::Read;
use std::os::fd::AsRawFd;

fn main() {
    let env = Env::new();
    env.set_args(&[
        "sh",
        "-c",
        "echo out-line; echo err-line >&2; read x; echo got-$x; exec sleep 1000",
    ]);
    let rt = Runtime::new(&env.root);
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let (mut err_r, err_w) = std::io::pipe().unwrap();
    let (in_r, in_w) = std::io::pipe().unwrap();
    let opts = CreateOptions {
        stdin: Some(in_r.as_raw_fd()),
        stdout: Some(out_w.as_raw_fd()),
        stderr: Some(err_w.as_raw_fd()),
        ..Default::default()
    };
    let id = unique("lib");
    let st = rt.create(&id, &env.bundle, &opts).expect("create");
    assert_eq!(st.status, Status::Created);
    drop((out_w, err_w, in_r));
    // Duplicate ids are refused with a typed error.
    let dup = rt.create(&id, &env.bundle, &opts).unwrap_err();
    assert!(
        matches!(dup, podrun::runtime::RuntimeError::Exists(_)),
        "{dup}"
    );
    rt.start(&id).expect("start");
    assert_eq!(rt.state(&id).unwrap().status, Status::Running);
    std::io::Write::write_all(&mut &in_w, b"ping\n").unwrap();
    drop(in_w);
    // The container keeps stdout/stderr open (sleep): read what is due, not to EOF.
    let mut err = [0u8; 9];
    err_r.read_exact(&mut err).unwrap();
    assert_eq!(&err, b"err-line\n");

    // exec with its own stdout pipe; the exec'd process is our child.
    let mut p = rt.spec_of(&id).unwrap().process().clone().unwrap();
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "echo exec-says-hi; hostname".into(),
    ]));
    let (mut ex_r, ex_w) = std::io::pipe().unwrap();
    let mut eo = ExecOptions::new(p);
    eo.stdout = Some(ex_w.as_raw_fd());
    let ex = rt.exec(&id, &eo).expect("exec");
    drop(ex_w);
    let mut ex_out = String::new();
    ex_r.read_to_string(&mut ex_out).unwrap();
    assert_eq!(ex_out, "exec-says-hi\npodrun\n");
    let ws = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(ex.pid), None).unwrap();
    assert_eq!(
        ws,
        nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(ex.pid), 0)
    );

    rt.kill(&id, nix::sys::signal::Signal::SIGKILL, false)
        .expect("kill");
    // The init is our child: reap it, then the container is stopped.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(st.pid), None);
    // Dead now: its end of the pipe is closed, so reading to EOF terminates.
    let mut out = String::new();
    out_r.read_to_string(&mut out).unwrap();
    assert_eq!(out, "out-line\ngot-ping\n");
    assert_eq!(rt.state(&id).unwrap().status, Status::Stopped);
    assert_eq!(rt.list().unwrap().len(), 1);
    rt.delete(&id, false).expect("delete");
    assert!(matches!(
        rt.state(&id),
        Err(podrun::runtime::RuntimeError::NotFound(_))
    ));
    assert!(cgroup_dirs(&format!("/podrun/{id}")).is_empty());
    println!("oci_library: ok");
}
