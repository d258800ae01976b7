//! Links libmodsecurity (found through pkg-config), or fails the build at once, with the command
//! that fixes it, when it is not installed (the WAF links against Debian's libmodsecurity3 and
//! loads Debian's OWASP CRS at run time). The C API is declared in `src/waf/ffi.rs`.

use std::process::Command;

const FIX: &str = "sudo apt-get install libmodsecurity-dev modsecurity-crs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    let found = Command::new("pkg-config").args(["--exists", "modsecurity"]).status().map(|s| s.success());
    match found {
        Ok(true) => link(),
        Ok(false) => fail("libmodsecurity (pkg-config package `modsecurity`) is not installed"),
        Err(_) => fail("pkg-config is not installed, so libmodsecurity cannot be found"),
    }
}

/// Tells rustc where libmodsecurity is and to link it (`pkg-config --libs modsecurity`).
fn link() {
    let out = match Command::new("pkg-config").args(["--libs", "modsecurity"]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => fail("pkg-config could not list libmodsecurity's libraries"),
    };
    let mut linked = false;
    for flag in out.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            linked |= lib == "modsecurity";
            println!("cargo:rustc-link-lib={lib}");
        }
    }
    if !linked {
        println!("cargo:rustc-link-lib=modsecurity");
    }
}

fn fail(what: &str) -> ! {
    let fix = if what.starts_with("pkg-config") { format!("{FIX} pkg-config") } else { FIX.to_owned() };
    eprintln!("\nerror: {what}.\nsigillum-edge needs it for the WAF; install it with:\n\n    {fix}\n");
    println!("cargo:warning={what}; install it with: {fix}");
    std::process::exit(1);
}
