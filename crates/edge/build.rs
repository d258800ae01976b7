//! Fails the build at once, with the command that fixes it, when libmodsecurity is not installed
//! (the WAF links against Debian's libmodsecurity3 and loads Debian's OWASP CRS at run time).

use std::process::Command;

const FIX: &str = "sudo apt-get install libmodsecurity-dev modsecurity-crs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    let found = Command::new("pkg-config").args(["--exists", "modsecurity"]).status().map(|s| s.success());
    match found {
        Ok(true) => {}
        Ok(false) => fail("libmodsecurity (pkg-config package `modsecurity`) is not installed"),
        Err(_) => fail("pkg-config is not installed, so libmodsecurity cannot be found"),
    }
}

fn fail(what: &str) -> ! {
    let fix = if what.starts_with("pkg-config") { format!("{FIX} pkg-config") } else { FIX.to_owned() };
    eprintln!("\nerror: {what}.\nsigillum-edge needs it for the WAF; install it with:\n\n    {fix}\n");
    println!("cargo:warning={what}; install it with: {fix}");
    std::process::exit(1);
}
