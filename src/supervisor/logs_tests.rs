use super::*;

#[test]
fn complete_lines_become_full_records_and_read_back() {
    let mut w = CriLineWriter::new("stdout");
    let mut out = Vec::new();
    w.feed(b"hello\nwor", &mut out).unwrap();
    w.feed(b"ld\n", &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().all(|l| l.contains(" stdout F ")));
    let back: Vec<String> = parse(&text).into_iter().map(|l| l.text).collect();
    assert_eq!(back, vec!["hello", "world"]);
}

#[test]
fn long_lines_split_into_partials_and_join_again() {
    let mut w = CriLineWriter::new("stderr");
    let mut out = Vec::new();
    let long = "x".repeat(MAX_LINE * 2 + 5);
    w.feed(long.as_bytes(), &mut out).unwrap();
    w.finish(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains(" stderr P ")).count(), 2);
    let back = parse(&text);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].text, long);
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "podrun-logs-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every file of the log, oldest first, read back (compressed ones too).
fn all_lines(path: &Path) -> Vec<String> {
    let mut files = rotated_logs(path);
    files.push(path.to_path_buf());
    files
        .iter()
        .flat_map(|f| parse(&read_log_file(f).unwrap()))
        .map(|l| l.text)
        .collect()
}

#[test]
fn rotation_keeps_files_under_the_limit_and_loses_no_line() {
    let dir = temp_dir("rotate");
    let path = dir.join("0.log");
    let limits = LogLimits {
        max_size: 300,
        max_files: 100,
    };
    let mut log = LogFile::open(&path, limits).unwrap().compress_in_place();
    let mut w = CriLineWriter::new("stdout");
    let mut sent = Vec::new();
    for i in 0..200 {
        let chunk: String = (0..3).map(|k| format!("line-{}\n", i * 3 + k)).collect();
        sent.extend((0..3).map(|k| format!("line-{}", i * 3 + k)));
        w.feed(chunk.as_bytes(), &mut log).unwrap();
    }
    let rotated = rotated_logs(&path);
    assert!(rotated.len() > 10, "{rotated:?}");
    for f in rotated.iter().chain([&path]) {
        let len = read_log_file(f).unwrap().len();
        assert!(len <= 300, "{} has {len} bytes", f.display());
    }
    // The newest rotated file stays plain, the older ones are compressed.
    assert!(rotated
        .last()
        .unwrap()
        .extension()
        .is_none_or(|e| e != "gz"));
    assert!(rotated[..rotated.len() - 1]
        .iter()
        .all(|f| f.extension().is_some_and(|e| e == "gz")));
    assert_eq!(all_lines(&path), sent);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rotation_keeps_at_most_max_files_the_newest_lines_among_them() {
    let dir = temp_dir("maxfiles");
    let path = dir.join("0.log");
    let limits = LogLimits {
        max_size: 200,
        max_files: 3,
    };
    let mut log = LogFile::open(&path, limits).unwrap().compress_in_place();
    let mut w = CriLineWriter::new("stdout");
    for i in 0..500 {
        w.feed(format!("n{i}\n").as_bytes(), &mut log).unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let lines = all_lines(&path);
    assert_eq!(lines.last().map(String::as_str), Some("n499"));
    let first: usize = lines[0][1..].parse().unwrap();
    let expect: Vec<String> = (first..500).map(|i| format!("n{i}")).collect();
    assert_eq!(lines, expect, "a gap in the kept lines");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rotated_names_follow_kubelets_time_format_and_sort_in_order() {
    let dir = temp_dir("names");
    let path = dir.join("2.log");
    let t = 1_764_650_000; // 2025-12-02 04:33:20 UTC
    let a = rotated_name(&path, t);
    assert_eq!(a.file_name().unwrap(), "2.log.20251202-043320");
    std::fs::write(&a, "").unwrap();
    let b = rotated_name(&path, t);
    assert_eq!(b.file_name().unwrap(), "2.log.20251202-043320.1");
    std::fs::write(format!("{}.gz", b.display()), "").unwrap();
    std::fs::write(dir.join("2.log.20251202-043319.gz"), "").unwrap();
    std::fs::write(dir.join(".2.log.20251202-043321.gz.tmp"), "").unwrap();
    let got: Vec<String> = rotated_logs(&path)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        got,
        [
            "2.log.20251202-043319.gz",
            "2.log.20251202-043320",
            "2.log.20251202-043320.1.gz"
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn one_read_is_one_write_with_one_time() {
    struct Count(usize, Vec<u8>);
    impl Write for Count {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0 += 1;
            self.1.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut out = Count(0, Vec::new());
    let mut w = CriLineWriter::new("stdout");
    w.feed("y\n".repeat(1000).as_bytes(), &mut out).unwrap();
    assert_eq!(out.0, 1);
    let back = parse(&String::from_utf8(out.1).unwrap());
    assert_eq!(back.len(), 1000);
    assert!(back.iter().all(|l| l.time == back[0].time && l.text == "y"));
}
