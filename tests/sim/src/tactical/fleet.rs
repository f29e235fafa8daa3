//! The simulated Tactical fleet: clients, sites, agents, alerts and software, generated
//! deterministically from a seed.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The size and mix of a generated fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub seed: u64,
    pub clients: usize,
    pub sites_per_client: usize,
    pub agents_per_site: usize,
    /// Share of agents with `monitoring_type = "server"`.
    pub server_share: f64,
    /// Share of Windows agents (the rest are Linux).
    pub windows_share: f64,
    /// Share of agents last seen between their offline and overdue thresholds.
    pub offline_share: f64,
    /// Share of agents last seen past their overdue threshold.
    pub overdue_share: f64,
    /// Share of agents whose `logged_in_username` is the literal `"None"`.
    pub no_user_share: f64,
    /// Share of agents with thresholds other than Tactical's defaults (10/60 min instead of 4/30).
    pub custom_threshold_share: f64,
    /// Alerts generated (spread over agents; some resolved, snoozed or hidden).
    pub alerts: usize,
    /// When above 0, every agent's `wmi_detail` is padded to about this many KB with more of
    /// what real agents report (Windows: `os`, `mem`, `usb`, `desktop_monitor` and
    /// `network_adapter` WMI sections; Linux: more `disks`), leaving every value the sync reads
    /// as it was. Real agents send 20–100 KB.
    pub wmi_detail_kb: usize,
}

impl Default for FleetSpec {
    fn default() -> Self {
        FleetSpec {
            seed: 1,
            clients: 3,
            sites_per_client: 3,
            agents_per_site: 5,
            server_share: 0.4,
            windows_share: 0.6,
            offline_share: 0.15,
            overdue_share: 0.15,
            no_user_share: 0.35,
            custom_threshold_share: 0.1,
            alerts: 10,
            wmi_detail_kb: 0,
        }
    }
}

impl FleetSpec {
    pub fn new(seed: u64, clients: usize, sites_per_client: usize, agents_per_site: usize) -> Self {
        FleetSpec { seed, clients, sites_per_client, agents_per_site, ..FleetSpec::default() }
    }

    pub fn agent_count(&self) -> usize {
        self.clients * self.sites_per_client * self.agents_per_site
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plat {
    Windows,
    Linux,
}

impl Plat {
    pub fn as_str(self) -> &'static str {
        match self {
            Plat::Windows => "windows",
            Plat::Linux => "linux",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimClient {
    pub id: i64,
    pub name: String,
    pub created_time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct SimSite {
    pub id: i64,
    pub client: i64,
    pub name: String,
    pub created_time: DateTime<Utc>,
}

/// Hardware of one agent; rendered as WMI (Windows) or a flat `wmi_detail` (Linux).
#[derive(Debug, Clone)]
pub struct Hardware {
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub cpu: String,
    pub cores: u32,
    pub threads: u32,
    pub gpu: Option<String>,
    pub disk_caption: String,
    pub disk_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct SimAgent {
    pub id: i64,
    pub agent_id: String,
    pub site: i64,
    pub hostname: String,
    pub plat: Plat,
    pub goarch: String,
    /// `server` | `workstation`.
    pub monitoring_type: String,
    pub operating_system: String,
    pub version: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub boot_time: f64,
    /// `"None"` when nobody is logged in.
    pub logged_in_username: String,
    pub last_logged_in_user: String,
    pub public_ip: String,
    pub ipv4: String,
    pub ipv6: String,
    pub total_ram: i64,
    pub disk_total_gb: f64,
    pub disk_used_gb: f64,
    pub offline_time: i64,
    pub overdue_time: i64,
    pub description: String,
    pub mesh_node_id: String,
    pub needs_reboot: bool,
    pub maintenance_mode: bool,
    pub overdue_email_alert: bool,
    pub overdue_dashboard_alert: bool,
    pub time_zone: Option<String>,
    pub patches_last_installed: Option<DateTime<Utc>>,
    pub created_time: DateTime<Utc>,
    pub hardware: Hardware,
    /// [`FleetSpec::wmi_detail_kb`]: the size `wmi_detail` is padded to (0: not padded).
    pub wmi_detail_kb: usize,
    /// `GET /software/` items (objects with the fixture's keys; some only `name`/`version`).
    pub software: Vec<Value>,
}

impl SimAgent {
    /// Tactical's own `Agent.status` at `now` (`elapsed == overdue` is still online there).
    pub fn tactical_status(&self, now: DateTime<Utc>) -> &'static str {
        let Some(seen) = self.last_seen else { return "offline" };
        let offline = now - Duration::minutes(self.offline_time);
        let overdue = now - Duration::minutes(self.overdue_time);
        if seen < offline && seen > overdue {
            "offline"
        } else if seen < offline && seen < overdue {
            "overdue"
        } else {
            "online"
        }
    }

    /// Tactical's `make_model` for this hardware.
    pub fn make_model(&self) -> String {
        format!("{} {}", self.hardware.vendor, self.hardware.model)
    }

    /// Tactical's `local_ips`: posix agents report prefixed v4 and v6, Windows only IPv4.
    pub fn local_ips(&self) -> String {
        match self.plat {
            Plat::Windows => self.ipv4.clone(),
            Plat::Linux => format!("{}/24, {}/64", self.ipv4, self.ipv6),
        }
    }

    /// The user Tactical's table shows now: see `AgentTableSerializer.get_logged_username`.
    pub fn table_username(&self, now: DateTime<Utc>) -> (String, bool) {
        let online = self.tactical_status(now) == "online";
        if self.logged_in_username == "None" && online {
            (self.last_logged_in_user.clone(), true)
        } else if self.logged_in_username != "None" {
            (self.logged_in_username.clone(), false)
        } else {
            ("-".to_owned(), false)
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimAlert {
    pub id: i64,
    /// Agent pk.
    pub agent: i64,
    /// `availability|check|task|custom`.
    pub alert_type: String,
    /// `info|warning|error`.
    pub severity: String,
    pub message: String,
    pub alert_time: DateTime<Utc>,
    pub snoozed: bool,
    pub snooze_until: Option<DateTime<Utc>>,
    pub resolved: bool,
    pub resolved_on: Option<DateTime<Utc>>,
    pub hidden: bool,
}

/// An alert to add with `SimHandle::add_alert`.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub alert_type: String,
    pub severity: String,
    pub message: String,
    pub resolved: bool,
    pub snoozed: bool,
    pub hidden: bool,
}

impl Default for NewAlert {
    fn default() -> Self {
        NewAlert {
            alert_type: "check".into(),
            severity: "error".into(),
            message: "Disk space check failed".into(),
            resolved: false,
            snoozed: false,
            hidden: false,
        }
    }
}

/// Everything the simulator serves.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub clients: Vec<SimClient>,
    pub sites: Vec<SimSite>,
    /// Ordered by id.
    pub agents: Vec<SimAgent>,
    pub alerts: Vec<SimAlert>,
    pub next_agent_id: i64,
    pub next_alert_id: i64,
    pub seed: u64,
    /// [`FleetSpec::wmi_detail_kb`], for agents added later.
    pub wmi_detail_kb: usize,
}

const CLIENT_NAMES: &[&str] = &[
    "Acme Inc.",
    "Globex Inc.",
    "Initech Inc.",
    "Umbrella Corp.",
    "Hooli LLC",
    "Stark Industries",
    "Wayne Enterprises",
    "Wonka Industries",
    "Cyberdyne Systems",
    "Soylent Corp.",
];
const SITE_NAMES: &[&str] = &["HQ", "Branch Office", "Warehouse", "Remote Workers", "Data Center", "Lab"];
const USERS: &[&str] = &["Administrator", "bwilson", "mgarcia", "akumar", "lchen", "jdoe", "jsmith"];
const DESCRIPTIONS: &[&str] =
    &["Accounting laptop", "File server", "Build runner", "Kiosk", "Domain controller", "Front desk PC", ""];
const TIME_ZONES: &[Option<&str>] = &[None, Some("Europe/Berlin"), Some("UTC"), Some("America/New_York")];
const WIN_WORKSTATION_OS: &[&str] = &[
    "Microsoft Windows 10 Pro, 64 bit v22H2 (build 19045.5011)",
    "Microsoft Windows 10 Enterprise, 64 bit v21H2 (build 19044.3086)",
    "Microsoft Windows 11 Enterprise, 64 bit v24H2 (build 26100.2033)",
    "Microsoft Windows 11 Pro, 64 bit v23H2 (build 22631.4317)",
];
const WIN_SERVER_OS: &[&str] = &[
    "Microsoft Windows Server 2016 Datacenter, 64 bit v1607 (build 14393.7428)",
    "Microsoft Windows Server 2019 Standard, 64 bit v1809 (build 17763.6414)",
    "Microsoft Windows Server 2022 Standard, 64 bit v21H2 (build 20348.2762)",
];
const LINUX_OS: &[(&str, &str)] = &[
    ("Debian GNU/Linux 12 (bookworm) x86_64 6.1.0-26-amd64", "amd64"),
    ("Rocky Linux 9.4 x86_64 5.14.0-427.37.1.el9_4.x86_64", "amd64"),
    ("Ubuntu 22.04.5 LTS x86_64 5.15.0-124-generic", "amd64"),
    ("Ubuntu 24.04.1 LTS aarch64 6.8.0-1015-aws", "arm64"),
];
const MACHINES: &[(&str, &str)] = &[
    ("LENOVO", "ThinkPad T14 Gen 2"),
    ("Dell Inc.", "OptiPlex 7090"),
    ("HP", "EliteBook 840 G8"),
    ("VMware, Inc.", "VMware Virtual Platform"),
    ("Microsoft Corporation", "Virtual Machine"),
    ("Dell Inc.", "PowerEdge R650"),
];
const CPUS: &[(&str, u32)] = &[
    ("Intel(R) Core(TM) i5-1135G7 @ 2.40GHz", 4),
    ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", 6),
    ("Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz", 12),
    ("AMD EPYC 7443P 24-Core Processor", 24),
    ("AMD Ryzen 7 PRO 5850U with Radeon Graphics", 8),
];
const GPUS: &[Option<&str>] = &[
    None,
    Some("Intel(R) UHD Graphics 630"),
    Some("Intel(R) Iris(R) Xe Graphics"),
    Some("Microsoft Basic Display Adapter"),
];
const RAM: &[i64] = &[4, 8, 16, 32, 64, 128];
const SOFTWARE: &[(&str, &str, &str, &str)] = &[
    ("Datto Windows Agent", "2.7.1.0", "Datto Inc.", "23.8 MB"),
    ("Microsoft ODBC Driver 17 for SQL Server", "17.3.1.1", "Microsoft Corporation", "4.1 MB"),
    (
        "Microsoft Visual C++ 2013 Redistributable (x64) - 12.0.40664",
        "12.0.40664.0",
        "Microsoft Corporation",
        "21.6 MB",
    ),
    ("Adobe Acrobat Reader DC", "20.013.20066", "Adobe Systems Incorporated", "369.9 MB"),
    ("Python 3.7.7 Standard Library (64-bit)", "3.7.7150.0", "Python Software Foundation", "26.8 MB"),
    ("psqlODBC_x64", "09.06.0504", "PostgreSQL Global Development Group", "8.1 MB"),
    ("SQL Server 2016 Client Tools", "13.0.14500.10", "Microsoft Corporation", "61.4 kB"),
    ("Mozilla Firefox (x64 en-US)", "132.0.1", "Mozilla", "241.3 MB"),
    ("Google Chrome", "130.0.6723.117", "Google LLC", "112.4 MB"),
    ("7-Zip 23.01 (x64)", "23.01", "Igor Pavlov", "5.4 MB"),
    ("Notepad++ (64-bit x64)", "8.6.9", "Notepad++ Team", "15.0 MB"),
    ("Microsoft Edge", "130.0.2849.80", "Microsoft Corporation", "0 B"),
];
const BARE_SOFTWARE: &[(&str, &str)] = &[
    ("LogMeIn Client", "1.3.4952"),
    ("Salt Minion 1.0.3 (Python 3)", "1.0.3"),
    ("Trend Micro Security Agent", "6.7.1364"),
];

const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn letters(rng: &mut StdRng, n: usize) -> String {
    (0..n).map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char).collect()
}

fn hex(rng: &mut StdRng, n: usize) -> String {
    (0..n).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn human_size(gb: f64, windows: bool) -> String {
    if windows { format!("{gb:.1}G") } else { format!("{gb:.1} GB") }
}

impl Fleet {
    /// Generates a fleet; times are relative to `now`.
    pub fn generate(spec: &FleetSpec, now: DateTime<Utc>) -> Fleet {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let created = now - Duration::days(30);
        let mut fleet = Fleet {
            next_agent_id: 1,
            next_alert_id: 1,
            seed: spec.seed,
            wmi_detail_kb: spec.wmi_detail_kb,
            ..Fleet::default()
        };
        let mut site_id = 0;
        for c in 0..spec.clients {
            let base = CLIENT_NAMES[c % CLIENT_NAMES.len()];
            let name =
                if c < CLIENT_NAMES.len() { base.to_owned() } else { format!("{base} {}", c / CLIENT_NAMES.len() + 1) };
            let client_id = c as i64 + 1;
            fleet.clients.push(SimClient { id: client_id, name, created_time: created });
            for s in 0..spec.sites_per_client {
                site_id += 1;
                let base = SITE_NAMES[s % SITE_NAMES.len()];
                let name =
                    if s < SITE_NAMES.len() { base.to_owned() } else { format!("{base} {}", s / SITE_NAMES.len() + 1) };
                fleet.sites.push(SimSite { id: site_id, client: client_id, name, created_time: created });
            }
        }
        let site_ids: Vec<i64> = fleet.sites.iter().map(|s| s.id).collect();
        for site in site_ids {
            for _ in 0..spec.agents_per_site {
                let agent = fleet.make_agent(&mut rng, spec, site, now);
                fleet.agents.push(agent);
            }
        }
        for _ in 0..spec.alerts {
            if fleet.agents.is_empty() {
                break;
            }
            let idx = rng.random_range(0..fleet.agents.len());
            let agent = fleet.agents[idx].id;
            let kinds = ["availability", "check", "task", "custom"];
            let severities = ["error", "warning", "info"];
            let alert_type = pick(&mut rng, &kinds).to_string();
            let severity =
                if alert_type == "availability" { "error".to_owned() } else { pick(&mut rng, &severities).to_string() };
            let roll: f64 = rng.random();
            let alert = NewAlert {
                message: format!("{} alert on agent {agent}", alert_type),
                alert_type,
                severity,
                resolved: roll < 0.15,
                snoozed: (0.15..0.25).contains(&roll),
                hidden: (0.25..0.4).contains(&roll),
            };
            let when = now - Duration::minutes(rng.random_range(10..60 * 24 * 14));
            fleet.push_alert(agent, alert, when, now);
        }
        fleet
    }

    /// A new agent on `site`, generated from the fleet's seed and the next id.
    pub fn add_agent(&mut self, site: i64, now: DateTime<Utc>) -> SimAgent {
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ (self.next_agent_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let agent = self.make_agent(
            &mut rng,
            &FleetSpec {
                offline_share: 0.0,
                overdue_share: 0.0,
                wmi_detail_kb: self.wmi_detail_kb,
                ..FleetSpec::default()
            },
            site,
            now,
        );
        self.agents.push(agent.clone());
        agent
    }

    pub fn push_alert(&mut self, agent: i64, a: NewAlert, when: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
        let id = self.next_alert_id;
        self.next_alert_id += 1;
        self.alerts.push(SimAlert {
            id,
            agent,
            alert_type: a.alert_type,
            severity: a.severity,
            message: a.message,
            alert_time: when,
            snoozed: a.snoozed,
            snooze_until: a.snoozed.then(|| now + Duration::days(1)),
            resolved: a.resolved,
            resolved_on: a.resolved.then_some(now),
            hidden: a.hidden,
        });
        id
    }

    fn make_agent(&mut self, rng: &mut StdRng, spec: &FleetSpec, site: i64, now: DateTime<Utc>) -> SimAgent {
        let id = self.next_agent_id;
        self.next_agent_id += 1;
        let server = rng.random::<f64>() < spec.server_share;
        let plat = if rng.random::<f64>() < spec.windows_share { Plat::Windows } else { Plat::Linux };
        let (operating_system, goarch) = match (plat, server) {
            (Plat::Windows, false) => (pick(rng, WIN_WORKSTATION_OS).to_string(), "amd64".to_owned()),
            (Plat::Windows, true) => (pick(rng, WIN_SERVER_OS).to_string(), "amd64".to_owned()),
            (Plat::Linux, _) => {
                let (os, arch) = pick(rng, LINUX_OS);
                (os.to_string(), arch.to_string())
            }
        };
        let hostname = match (plat, server) {
            (Plat::Windows, false) => format!("{}-{id:05}", pick(rng, &["DESKTOP", "LAPTOP"])),
            (Plat::Windows, true) => format!("SRV-{id:05}"),
            (Plat::Linux, true) => format!("{}-{id:05}", pick(rng, &["app", "db", "web"])),
            (Plat::Linux, false) => format!("dev-{id:05}"),
        };
        let custom = rng.random::<f64>() < spec.custom_threshold_share;
        let (offline_time, overdue_time) = if custom { (10, 60) } else { (4, 30) };
        let roll: f64 = rng.random();
        let age_secs = if roll < spec.offline_share {
            rng.random_range((offline_time + 1) * 60..(overdue_time - 1) * 60)
        } else if roll < spec.offline_share + spec.overdue_share {
            rng.random_range((overdue_time + 1) * 60..30 * 24 * 3600)
        } else {
            // Online with a margin of at least 90 s before it would go offline.
            rng.random_range(0..(offline_time * 60 - 90).max(1))
        };
        let last_seen = now - Duration::seconds(age_secs) - Duration::microseconds(rng.random_range(0..1_000_000));
        let uptime = rng.random_range(3600..60 * 24 * 3600) as f64 + rng.random::<f64>();
        let boot_time = (last_seen.timestamp_micros() as f64 / 1e6) - uptime;
        let (vendor, model) =
            if server && rng.random::<f64>() < 0.5 { ("Dell Inc.", "PowerEdge R650") } else { *pick(rng, MACHINES) };
        let (cpu, cores) = *pick(rng, CPUS);
        let disk_gb = *pick(rng, &[256.0, 512.0, 1024.0, 2048.0]);
        let disk_caption = match plat {
            Plat::Windows => format!("NVMe SSD {disk_gb:.0}GB"),
            Plat::Linux => "QEMU HARDDISK SCSI HDD sda 40.0 GB".to_owned(),
        };
        let no_user = rng.random::<f64>() < spec.no_user_share;
        let software = if plat == Plat::Windows {
            let n = rng.random_range(3..SOFTWARE.len());
            let mut items: Vec<Value> = SOFTWARE
                .iter()
                .take(n)
                .map(|(name, version, publisher, size)| {
                    json!({
                        "name": name, "size": size, "source": "", "version": version, "location": "",
                        "publisher": publisher, "uninstall": format!("MsiExec.exe /X{{{}}}", hex(rng, 8).to_uppercase()),
                        "install_date": "2024-06-08 00:00:00 +0000 UTC",
                    })
                })
                .collect();
            let (name, version) = pick(rng, BARE_SOFTWARE);
            items.push(json!({"name": name, "version": version}));
            items
        } else {
            Vec::new()
        };
        let ram = *pick(rng, RAM);
        let used_frac = rng.random_range(0.1..0.95);
        SimAgent {
            id,
            agent_id: letters(rng, 40),
            site,
            hostname,
            plat,
            goarch,
            monitoring_type: if server { "server" } else { "workstation" }.to_owned(),
            operating_system,
            version: "2.11.0".to_owned(),
            last_seen: Some(last_seen),
            boot_time: (boot_time * 1e6).round() / 1e6,
            logged_in_username: if no_user { "None".to_owned() } else { pick(rng, USERS).to_string() },
            last_logged_in_user: pick(rng, USERS).to_string(),
            public_ip: format!("{}.{}", pick(rng, &["192.0.2", "198.51.100", "203.0.113"]), rng.random_range(1..255)),
            ipv4: format!("10.{}.{}.{}", (id >> 16) & 0xff, (id >> 8) & 0xff, id & 0xff),
            ipv6: format!("fd00::10:{}:{}:{}", (id >> 16) & 0xff, (id >> 8) & 0xff, id & 0xff),
            total_ram: ram,
            disk_total_gb: disk_gb * 0.93,
            disk_used_gb: disk_gb * 0.93 * used_frac,
            offline_time,
            overdue_time,
            description: pick(rng, DESCRIPTIONS).to_string(),
            mesh_node_id: hex(rng, 96),
            needs_reboot: rng.random::<f64>() < 0.05,
            maintenance_mode: rng.random::<f64>() < 0.03,
            overdue_email_alert: rng.random(),
            overdue_dashboard_alert: rng.random(),
            time_zone: pick(rng, TIME_ZONES).map(str::to_owned),
            patches_last_installed: (plat == Plat::Windows).then(|| now - Duration::days(rng.random_range(1..60))),
            created_time: now - Duration::days(30),
            hardware: Hardware {
                vendor: vendor.to_owned(),
                model: model.to_owned(),
                serial: hex(rng, 10).to_uppercase(),
                cpu: cpu.to_owned(),
                cores,
                threads: cores * 2,
                gpu: pick(rng, GPUS).map(str::to_owned),
                disk_caption,
                disk_bytes: (disk_gb as u64) << 30,
            },
            wmi_detail_kb: spec.wmi_detail_kb,
            software,
        }
    }

    pub fn agent(&self, pk: i64) -> Option<&SimAgent> {
        self.agents.iter().find(|a| a.id == pk)
    }

    pub fn agent_mut(&mut self, pk: i64) -> Option<&mut SimAgent> {
        self.agents.iter_mut().find(|a| a.id == pk)
    }

    pub fn by_agent_id(&self, agent_id: &str) -> Option<&SimAgent> {
        self.agents.iter().find(|a| a.agent_id == agent_id)
    }

    pub fn site(&self, id: i64) -> Option<&SimSite> {
        self.sites.iter().find(|s| s.id == id)
    }

    pub fn client(&self, id: i64) -> Option<&SimClient> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// The client pk of an agent (through its site).
    pub fn client_of(&self, agent: &SimAgent) -> Option<i64> {
        self.site(agent.site).map(|s| s.client)
    }

    /// Disk sizes as Tactical renders them.
    pub fn disk_strings(agent: &SimAgent) -> (String, String, String) {
        let windows = agent.plat == Plat::Windows;
        let total = agent.disk_total_gb;
        let used = agent.disk_used_gb;
        (human_size(total, windows), human_size(used, windows), human_size(total - used, windows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let now = Utc::now();
        let spec = FleetSpec::new(42, 2, 2, 10);
        let a = Fleet::generate(&spec, now);
        let b = Fleet::generate(&spec, now);
        assert_eq!(a.agents.len(), 40);
        let ids = |f: &Fleet| f.agents.iter().map(|x| (x.agent_id.clone(), x.hostname.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        let c = Fleet::generate(&FleetSpec::new(43, 2, 2, 10), now);
        assert_ne!(ids(&a), ids(&c));
    }

    #[test]
    fn mix_covers_every_case() {
        let now = Utc::now();
        let f = Fleet::generate(&FleetSpec::new(7, 3, 3, 20), now);
        let statuses: std::collections::HashSet<_> = f.agents.iter().map(|a| a.tactical_status(now)).collect();
        assert_eq!(statuses.len(), 3, "{statuses:?}");
        assert!(f.agents.iter().any(|a| a.monitoring_type == "server"));
        assert!(f.agents.iter().any(|a| a.monitoring_type == "workstation"));
        assert!(f.agents.iter().any(|a| a.logged_in_username == "None"));
        assert!(f.agents.iter().any(|a| a.plat == Plat::Linux) && f.agents.iter().any(|a| a.plat == Plat::Windows));
        assert!(f.agents.iter().any(|a| a.offline_time != 4));
    }
}
