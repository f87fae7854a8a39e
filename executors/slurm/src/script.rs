//! The batch script a task is submitted as: `#SBATCH` lines from the options, the worker's
//! environment, `prerun`, the worker itself (directly or through `srun`), `postrun`; and the
//! conversions between covalent durations and Slurm's `--time` format.
//!
//! Pure text: nothing here runs anything.

use std::time::Duration;

use covalent::executor::worker::{RESULT_ENV, TASK_ENV, shell_quote};

use crate::SlurmExecutor;

/// What a script is rendered from besides the executor's options.
pub(crate) struct JobSpec<'a> {
    /// `--job-name`.
    pub name: &'a str,
    /// `--time`, in Slurm's format.
    pub time: Option<String>,
    /// The worker binary as a shell word (quoted, `"$HOME"/...` for home-relative paths).
    pub binary: &'a str,
    /// A job array's script: submitted from the array's directory, each index running the
    /// task in `<index>/` and writing its streams there.
    pub array: bool,
    /// What the electron declared it needs: `--cpus-per-task`, `--mem`, `--gres=gpu:N` and
    /// `--licenses` of its own, over the executor's `cpus_per_task`, `mem` and `gres`.
    pub needs: covalent::resources::Needs,
}

/// A path as a shell word in the job script: home-relative paths are resolved against
/// `$HOME` (the job's working directory is the task's directory, not the home).
pub(crate) fn script_path(p: &str) -> String {
    if p.starts_with('/') {
        shell_quote(p)
    } else {
        format!("\"$HOME\"/{}", shell_quote(p.trim_start_matches("./")))
    }
}

/// `--time` for a time limit: whole minutes, rounded up, at least 1 (Slurm's granularity).
pub(crate) fn slurm_minutes(limit: Duration) -> String {
    let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
    secs.div_ceil(60).max(1).to_string()
}

/// Parses Slurm's time formats (`M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`).
pub(crate) fn parse_slurm_time(t: &str) -> Option<Duration> {
    let t = t.trim();
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, t),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let secs = match (t.contains('-'), parts.as_slice()) {
        (false, [m]) => m * 60,
        (false, [m, s]) => m * 60 + s,
        (false, [h, m, s]) => h * 3600 + m * 60 + s,
        (true, [h]) => h * 3600,
        (true, [h, m]) => h * 3600 + m * 60,
        (true, [h, m, s]) => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86400 + secs))
}

fn check_line(what: &str, v: &str) -> Result<(), String> {
    if v.contains('\n') || v.contains('\r') {
        return Err(format!("{what} must be one line, found {v:?}"));
    }
    Ok(())
}

/// The `#SBATCH` lines of the executor's site options (`partition`, `mem`, `gres`, `account`,
/// `qos`, then `extra` as given), shared by task jobs and allocations.
pub(crate) fn site_lines(e: &SlurmExecutor, s: &mut String) -> Result<(), String> {
    let options = [
        ("partition", &e.partition),
        ("mem", &e.mem),
        ("gres", &e.gres),
        ("account", &e.account),
        ("qos", &e.qos),
    ];
    for (flag, value) in options {
        if let Some(v) = value {
            check_line(flag, v)?;
            s.push_str(&format!("#SBATCH --{flag}={v}\n"));
        }
    }
    for line in &e.extra {
        check_line("extra", line)?;
        let line = line.trim();
        if !line.starts_with("#SBATCH") {
            s.push_str("#SBATCH ");
        }
        s.push_str(line);
        s.push('\n');
    }
    Ok(())
}

/// The batch script.
pub(crate) fn render(e: &SlurmExecutor, job: &JobSpec<'_>) -> Result<String, String> {
    let mut s = String::from("#!/bin/bash\n");
    let mut sbatch = |flag: &str, v: &str| -> Result<(), String> {
        check_line(flag, v)?;
        s.push_str(&format!("#SBATCH --{flag}={v}\n"));
        Ok(())
    };
    sbatch("job-name", job.name)?;
    // Relative to the job's working directory: the task's directory, or the array's.
    let streams = if job.array { "%a/" } else { "" };
    sbatch("output", &format!("{streams}stdout"))?;
    sbatch("error", &format!("{streams}stderr"))?;
    if let Some(t) = &job.time {
        sbatch("time", t)?;
    }
    let needs = &job.needs;
    let cpus = if needs.cpus > 0 {
        Some(needs.cpus)
    } else {
        e.cpus_per_task
    };
    if let Some(n) = cpus {
        sbatch("cpus-per-task", &n.to_string())?;
    }
    if needs.memory > 0 {
        sbatch("mem", &covalent::resources::format_memory(needs.memory))?;
    }
    if needs.gpus > 0 {
        sbatch("gres", &format!("gpu:{}", needs.gpus))?;
    }
    if !needs.custom.is_empty() {
        let l: Vec<String> = needs
            .custom
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        sbatch("licenses", &l.join(","))?;
    }
    let mut site = e.clone();
    if needs.memory > 0 {
        site.mem = None;
    }
    if needs.gpus > 0 {
        site.gres = None;
    }
    site_lines(&site, &mut s)?;
    // The task's directory, whatever `prerun` does to the working directory.
    if job.array {
        s.push_str("covalent_dir=$PWD/$SLURM_ARRAY_TASK_ID\ncd \"$covalent_dir\" || exit 1\n");
    } else {
        s.push_str("covalent_dir=$PWD\n");
    }
    s.push_str(&format!(
        "export {TASK_ENV}=\"$covalent_dir/task.json\" {RESULT_ENV}=\"$covalent_dir/result.json\"\n"
    ));
    for (k, v) in &e.env {
        if k.is_empty()
            || k.starts_with(|c: char| c.is_ascii_digit())
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!("env: `{k}` is not a valid variable name"));
        }
        s.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    for cmd in &e.prerun {
        s.push_str(cmd);
        s.push('\n');
    }
    if e.use_srun {
        s.push_str("srun");
        for o in &e.srun_options {
            check_line("srun_options", o)?;
            s.push(' ');
            s.push_str(&shell_quote(o));
        }
        s.push(' ');
    }
    s.push_str(job.binary);
    // The worker's own status (128+N: killed by signal N), which sacct does not keep.
    s.push_str("\ncovalent_status=$?\necho $covalent_status > \"$covalent_dir/worker.status\"\n");
    for cmd in &e.postrun {
        s.push_str(cmd);
        s.push('\n');
    }
    s.push_str("exit $covalent_status\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_up() {
        assert_eq!(slurm_minutes(Duration::from_secs(1)), "1");
        assert_eq!(slurm_minutes(Duration::from_secs(60)), "1");
        assert_eq!(slurm_minutes(Duration::from_secs(61)), "2");
        assert_eq!(slurm_minutes(Duration::from_millis(60_500)), "2");
        assert_eq!(slurm_minutes(Duration::from_millis(300)), "1");
        assert_eq!(slurm_minutes(Duration::from_secs(3600)), "60");
    }

    #[test]
    fn slurm_times_parse() {
        let p = |t| parse_slurm_time(t).map(|d| d.as_secs());
        assert_eq!(p("5"), Some(300));
        assert_eq!(p("5:30"), Some(330));
        assert_eq!(p("1:00:00"), Some(3600));
        assert_eq!(p("2-0"), Some(2 * 86400));
        assert_eq!(p("1-2:3"), Some(86400 + 2 * 3600 + 180));
        assert_eq!(p("1-2:3:4"), Some(86400 + 2 * 3600 + 184));
        assert_eq!(p("soon"), None);
        assert_eq!(p("UNLIMITED"), None);
    }

    #[test]
    fn the_script_has_every_option() {
        let e = SlurmExecutor {
            partition: Some("gpu".into()),
            cpus_per_task: Some(4),
            mem: Some("8G".into()),
            gres: Some("gpu:1".into()),
            account: Some("proj".into()),
            qos: Some("high".into()),
            extra: vec!["--exclusive".into(), "#SBATCH --constraint=a100".into()],
            env: [("ANSWER".to_string(), "forty two".to_string())].into(),
            prerun: vec!["module load cuda".into()],
            postrun: vec!["echo done".into()],
            use_srun: true,
            srun_options: vec!["--mpi=none".into()],
            ..Default::default()
        };
        let s = render(
            &e,
            &JobSpec {
                name: "covalent-add",
                time: Some("2".into()),
                binary: "/opt/bin/app",
                array: false,
                needs: Default::default(),
            },
        )
        .unwrap();
        for line in [
            "#!/bin/bash",
            "#SBATCH --job-name=covalent-add",
            "#SBATCH --output=stdout",
            "#SBATCH --error=stderr",
            "#SBATCH --time=2",
            "#SBATCH --partition=gpu",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=8G",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --account=proj",
            "#SBATCH --qos=high",
            "#SBATCH --exclusive",
            "#SBATCH --constraint=a100",
            "export ANSWER='forty two'",
            "module load cuda",
            "srun --mpi=none /opt/bin/app",
            "echo done",
            "exit $covalent_status",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
        // #SBATCH lines must all come before the first command.
        let first_cmd = s
            .lines()
            .position(|l| l.starts_with("covalent_dir="))
            .unwrap();
        assert!(s.lines().skip(first_cmd).all(|l| !l.starts_with("#SBATCH")));
    }

    #[test]
    fn an_array_script_runs_each_index_in_its_directory() {
        let s = render(
            &SlurmExecutor::default(),
            &JobSpec {
                name: "covalent-array-1",
                time: None,
                binary: "/opt/bin/app",
                array: true,
                needs: Default::default(),
            },
        )
        .unwrap();
        for line in [
            "#SBATCH --output=%a/stdout",
            "#SBATCH --error=%a/stderr",
            "covalent_dir=$PWD/$SLURM_ARRAY_TASK_ID",
            "cd \"$covalent_dir\" || exit 1",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let e = SlurmExecutor {
            partition: Some("a\nb".into()),
            ..Default::default()
        };
        let job = JobSpec {
            name: "x",
            time: None,
            binary: "b",
            array: false,
            needs: Default::default(),
        };
        assert!(render(&e, &job).unwrap_err().contains("one line"));
        let e = SlurmExecutor {
            env: [("1BAD".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        assert!(
            render(&e, &job)
                .unwrap_err()
                .contains("not a valid variable name")
        );
    }

    #[test]
    fn an_electrons_needs_become_its_jobs_options() {
        let e = SlurmExecutor {
            cpus_per_task: Some(2),
            mem: Some("4G".into()),
            gres: Some("gpu:4".into()),
            ..Default::default()
        };
        let job = JobSpec {
            name: "x",
            time: None,
            binary: "b",
            array: false,
            needs: covalent::resources::Needs {
                cpus: 8,
                memory: 16 << 30,
                gpus: 1,
                custom: &[("matlab", 1)],
            },
        };
        let s = render(&e, &job).unwrap();
        for line in [
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --mem=16G",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --licenses=matlab:1",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
        assert!(
            !s.contains("--mem=4G") && !s.contains("gpu:4") && !s.contains("=2\n"),
            "{s}"
        );
        // Without needs, the executor's own options.
        let plain = render(
            &e,
            &JobSpec {
                needs: Default::default(),
                ..job
            },
        )
        .unwrap();
        assert!(
            plain.contains("--cpus-per-task=2") && plain.contains("--mem=4G"),
            "{plain}"
        );
    }

    #[test]
    fn home_relative_paths() {
        assert_eq!(script_path("/abs/bin"), "/abs/bin");
        assert_eq!(script_path(".cache/x"), "\"$HOME\"/.cache/x");
    }
}
