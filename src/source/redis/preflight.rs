//! `recon doctor`'s checks of a Redis read model: the server answers, the login is accepted, its
//! version, whether any key matches `redis.key_pattern` (one `SCAN` call, not a scan of the keyspace),
//! and whether the user may write (`ACL DRYRUN`, Redis 7: nothing is written).

use crate::secret::redact_url;
use crate::source::preflight::{Check, Checklist};

use super::{glob_escape, strip, RedisSettings};

pub const REACHABLE: &str = "read_model.reachable";
pub const AUTHENTICATED: &str = "read_model.authenticated";
pub const VERSION: &str = "read_model.version";
pub const KEYS: &str = "read_model.keys";
pub const WRITE_PRIVILEGE: &str = "read_model.write_privilege";

pub async fn preflight(settings: &RedisSettings, list: &mut Checklist) {
    let shown = redact_url(&settings.url);
    let client = match redis::Client::open(settings.url.as_str()) {
        Ok(client) => client,
        Err(e) => {
            list.push(Check::fail(
                REACHABLE,
                format!("redis.url {shown} is not a Redis URL: {}", strip(&e, &settings.url)),
                "write redis.url as redis://[USER:PASSWORD@]HOST:PORT/DB (rediss:// for TLS)",
            ));
            list.skip(&[AUTHENTICATED, VERSION, KEYS, WRITE_PRIVILEGE], REACHABLE);
            return;
        }
    };
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(conn) => conn,
        Err(e) => {
            let reason = strip(&e, &settings.url);
            let refused_login = e.kind() == redis::ErrorKind::AuthenticationFailed
                || reason.contains("WRONGPASS")
                || reason.contains("NOAUTH")
                || reason.contains("NOPERM");
            if refused_login {
                list.push(Check::ok(REACHABLE, format!("{shown} answers")));
                list.push(Check::fail(
                    AUTHENTICATED,
                    reason,
                    "check the user and password in redis.url (or REDIS_URL / --redis-url)",
                ));
                list.skip(&[VERSION, KEYS, WRITE_PRIVILEGE], AUTHENTICATED);
            } else {
                list.push(Check::fail(
                    REACHABLE,
                    format!("{shown}: {reason}"),
                    "check redis.url (or REDIS_URL / --redis-url) and that the server runs",
                ));
                list.skip(&[AUTHENTICATED, VERSION, KEYS, WRITE_PRIVILEGE], REACHABLE);
            }
            return;
        }
    };
    list.push(Check::ok(REACHABLE, format!("{shown} answers")));
    // Before Redis 6 there is no ACL command (anyone logged in may write); a user may also be denied it.
    let whoami: Result<String, redis::RedisError> = redis::cmd("ACL").arg("WHOAMI").query_async(&mut conn).await;
    let (user, denied) = match whoami {
        Ok(user) => (Some(user), false),
        Err(e) => (None, e.code() == Some("NOPERM") || e.to_string().contains("NOPERM")),
    };
    list.push(Check::ok(
        AUTHENTICATED,
        match (&user, denied) {
            (Some(user), _) => format!("logged in as {user:?}"),
            (None, true) => "logged in (the user may not run ACL WHOAMI)".to_string(),
            (None, false) => "connected (no ACL user: a server before Redis 6)".to_string(),
        },
    ));
    let info: Result<String, _> = redis::cmd("INFO").arg("server").query_async(&mut conn).await;
    let version = info.ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_string())
    });
    list.push(Check::ok(
        VERSION,
        match &version {
            Some(v) => format!("Redis {v}"),
            None => "Redis (INFO refused: version unknown)".to_string(),
        },
    ));

    let (prefix, suffix) = settings
        .key_pattern
        .split_once("{}")
        .unwrap_or((&settings.key_pattern, ""));
    let glob = format!("{}*{}", glob_escape(prefix), glob_escape(suffix));
    let sample: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg(&glob)
        .arg("COUNT")
        .arg(1000)
        .query_async(&mut conn)
        .await;
    list.push(match sample {
        Ok((_, names)) if !names.is_empty() => Check::ok(
            KEYS,
            format!("keys match {:?} (e.g. {})", settings.key_pattern, names[0]),
        ),
        Ok((0, _)) => Check::fail(
            KEYS,
            format!("no key matches {:?} in this database", settings.key_pattern),
            "check redis.key_pattern and the database number in redis.url (…/DB)",
        ),
        Ok(_) => Check::ok(
            KEYS,
            format!(
                "no key matching {:?} among the first keys scanned (the database is large; a check will tell)",
                settings.key_pattern
            ),
        ),
        Err(e) => Check::fail(
            KEYS,
            format!("SCAN refused: {}", strip(&e, &settings.url)),
            "the user needs +scan and read access to the keys (~pattern) in its ACL",
        ),
    });

    let probe = settings.key_pattern.replacen("{}", "recon-doctor-probe", 1);
    let Some(user) = user else {
        list.push(if denied {
            Check::skipped(
                WRITE_PRIVILEGE,
                "the user may not run ACL WHOAMI: cannot tell without writing; a repair's first write will",
            )
        } else {
            Check::ok(WRITE_PRIVILEGE, "no ACL: writes allowed")
        });
        return;
    };
    let dryrun: Result<String, _> = redis::cmd("ACL")
        .arg("DRYRUN")
        .arg(&user)
        .arg("SET")
        .arg(&probe)
        .arg("v")
        .query_async(&mut conn)
        .await;
    list.push(match dryrun {
        Ok(answer) if answer == "OK" => Check::ok(
            WRITE_PRIVILEGE,
            format!("user {user:?} may write keys like {probe} (ACL DRYRUN)"),
        ),
        Ok(answer) => Check::fail(
            WRITE_PRIVILEGE,
            format!("user {user:?} may not write {probe}: {answer}"),
            format!(
                "`recon check` works; for repairs grant the user write commands on the keys, e.g. ACL SETUSER {user} \
                 +@write ~{}",
                glob
            ),
        ),
        Err(e) => Check::skipped(
            WRITE_PRIVILEGE,
            format!(
                "ACL DRYRUN unavailable (Redis 7 and the right to run it): {}",
                strip(&e, &settings.url)
            ),
        ),
    });
}
