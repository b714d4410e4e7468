//! Keeps the long-lived supervisor small: drops resident code pages it no longer needs.

/// Drops the supervisor's resident copies of code and read-only data, and returns freed
/// heap to the kernel. The supervisor runs a small loop out of a large binary: start-up
/// maps in (and fault-around keeps) most of its text and of libc, though the loop touches
/// little of it. A private file mapping with no copied-on-write page holds nothing but
/// the file's own bytes, so dropping its pages is safe: they are read again from the page
/// cache on use. Mappings with any anonymous page (relocated data, .data) are left alone.
pub fn trim_resident() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let file_backed = path.starts_with('/');
            current = match (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                (Ok(start), Ok(end)) if file_backed && (perms == "r-xp" || perms == "r--p") => {
                    Some((start, end))
                }
                _ => None,
            };
            continue;
        }
        if first == "Anonymous:" {
            if let Some((start, end)) = current.take() {
                if f.next() == Some("0") {
                    // SAFETY: a private, read-only file mapping without a single anonymous
                    // (copied) page: dropping its pages loses nothing.
                    unsafe {
                        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
                    };
                }
            }
        }
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
}
