
use builtin;
use str;

set edit:completion:arg-completer[recon] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'recon'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'recon'= {
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand check 'Compare the read model with the write model and report drift (never writes)'
            cand explain 'Show why keys drift: both sides side by side, rules and metadata (never writes)'
            cand demo 'Run a check on an embedded shop with injected drift, then clean up'
            cand repair 'Repair the drift a check finds, with conditional writes and an undo log (dry run by default)'
            cand undo 'Undo a repair from its audit log, conditionally (dry run by default)'
            cand reindex 'Rebuild the read model into a fresh index, verify it, swap the alias (zero downtime)'
            cand doctor 'Check the configuration, both sides and the [compare] rules before a run (fast: no scan)'
            cand init 'Write a commented recon.toml to start from, or one derived from a table (never overwrites)'
            cand report 'Work with check reports: combine shard reports into one'
            cand completions 'Print a shell completion script to stdout'
            cand man 'Print the man page of recon, or of one of its commands, to stdout (roff: `recon man check | man -l -`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'recon;check'= {
            cand -c 'Configuration file (TOML); see docs/configuration.md'
            cand --config 'Configuration file (TOML); see docs/configuration.md'
            cand --pg-url 'PostgreSQL URL; overrides postgres.url and DATABASE_URL'
            cand --es-url 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL'
            cand --index 'Index or alias holding the read model; overrides elasticsearch.index'
            cand --redis-url 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL'
            cand --grace 'Report drift on rows changed within DURATION before the snapshot as `pending` instead of failing (needs postgres.updated_at), e.g. 30s, 5m'
            cand --allow 'Exit 0 as long as at most N keys drift'
            cand --limit 'List at most N drifted keys in the report (counts stay complete)'
            cand -f 'Report format [default: table on a terminal, json otherwise]'
            cand --format 'Report format [default: table on a terminal, json otherwise]'
            cand -o 'Write the report to FILE (atomically: a complete report or none) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same run (one snapshot, the same counts), e.g. `-o junit:report.xml -o markdown:summary.md -o prometheus:recon.prom`; a plain FILE takes --format'
            cand --output 'Write the report to FILE (atomically: a complete report or none) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same run (one snapshot, the same counts), e.g. `-o junit:report.xml -o markdown:summary.md -o prometheus:recon.prom`; a plain FILE takes --format'
            cand --keys 'Check only these keys (comma-separated), orphans among them included'
            cand --keys-file 'Check only the keys listed in FILE, one per line (`-` for stdin; `#` starts a comment line)'
            cand --since 'Check only rows changed since DURATION ago (e.g. 1h) or since TIMESTAMP (RFC 3339), and their documents (needs postgres.updated_at). Cannot see orphans left by deletes: run a full check too'
            cand --recheck 'After the scan, wait DURATION, then read every drifted key again from both sides and drop the keys that now agree (reported as converged), e.g. 30s'
            cand --parallel 'Split the key space into N ranges of about equal rows and scan them concurrently, all in one PostgreSQL snapshot and one Elasticsearch point in time'
            cand --shard 'Check only the K-th of N contiguous key ranges (e.g. 2/8); combine the shards'' JSON reports with `recon report merge`'
            cand --sample 'Check a seeded random set of contiguous key ranges covering about FRACTION of the rows (0 < FRACTION <= 1), and estimate the total drift'
            cand --sample-seed 'Seed for --sample [default: from the clock; the report states it]'
            cand --checkpoint 'Record the last key fully compared (and the counts and drift up to it) in FILE as the scan goes, per range with --parallel, so that `--resume` can continue after a crash or an interrupt. A finished run removes FILE'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -q 'Only warnings and errors on stderr: no progress bars, progress lines or notes'
            cand --quiet 'Only warnings and errors on stderr: no progress bars, progress lines or notes'
            cand -v 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
            cand --verbose 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
            cand --resume 'Continue the run recorded in --checkpoint FILE after its last compared key (every range after its own), in a new snapshot (the report says how many snapshots it spans); starts from the beginning when FILE is absent'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;explain'= {
            cand -c 'Configuration file (TOML); see docs/configuration.md'
            cand --config 'Configuration file (TOML); see docs/configuration.md'
            cand --pg-url 'PostgreSQL URL; overrides postgres.url and DATABASE_URL'
            cand --es-url 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL'
            cand --index 'Index or alias holding the read model; overrides elasticsearch.index'
            cand --redis-url 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL'
            cand --keys-file 'Explain the keys listed in FILE too, one per line (`-` for stdin; `#` starts a comment line)'
            cand -f 'Output: columns for a person, or one `recon.explain/v1` JSON object per key and line'
            cand --format 'Output: columns for a person, or one `recon.explain/v1` JSON object per key and line'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -v 'More on stderr: -v adds debug messages (where each setting came from, which sides are read), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
            cand --verbose 'More on stderr: -v adds debug messages (where each setting came from, which sides are read), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;demo'= {
            cand --orders 'Number of orders in the demo shop'
            cand -f 'Report format [default: table on a terminal, json otherwise]'
            cand --format 'Report format [default: table on a terminal, json otherwise]'
            cand --read-model 'The read model the shop is projected into: the in-process Elasticsearch-API emulator, or a throwaway redis-server (which must be installed)'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -q 'Only warnings and errors on stderr: no progress output'
            cand --quiet 'Only warnings and errors on stderr: no progress output'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;repair'= {
            cand -c 'Configuration file (TOML); see docs/configuration.md'
            cand --config 'Configuration file (TOML); see docs/configuration.md'
            cand --pg-url 'PostgreSQL URL; overrides postgres.url and DATABASE_URL'
            cand --es-url 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL'
            cand --index 'Index or alias holding the read model; overrides elasticsearch.index'
            cand --redis-url 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL'
            cand --grace 'Leave rows changed within DURATION alone (the projector may not have caught up), e.g. 5m'
            cand --from-report 'Repair the keys listed in a `recon check` JSON or NDJSON report (each re-verified first)'
            cand --keys 'Repair these keys (comma-separated), re-verified first'
            cand --keys-file 'Repair the keys in FILE, one per line (`-` for stdin; `#` starts a comment line), as `recon check --keys-file` reads them'
            cand --from-plan 'Apply a plan written earlier with --plan; anything written since it was made conflicts'
            cand --resume 'Finish an interrupted repair from its audit log, without repeating applied actions'
            cand --plan 'Write the whole plan to FILE (NDJSON); apply it later with --from-plan'
            cand --mode 'replace: write the whole projected document, keeping compare.ignore fields; patch: update only the differing top-level fields'
            cand --max-changes 'Refuse to apply a plan of more than N writes'
            cand --max-deletes 'Refuse to apply a plan of more than N deletes'
            cand --audit 'The write-ahead audit log [default: recon-repair-YYYYMMDDTHHMMSSZ.ndjson in the current directory]'
            cand --batch-size 'Most documents per bulk request'
            cand --batch-bytes 'Most bytes per bulk request, e.g. 5MB, 512KB'
            cand --concurrency 'Bulk requests in flight at once'
            cand --max-rate 'Most documents written (or re-projection requests published) per second'
            cand --via 'How the repair reaches the read model. write: conditional writes by recon itself. amqp, http, ndjson: re-projection requests to the projector ([publish] in the configuration; docs/reproject-contract.md), which then writes the read model itself'
            cand --amqp-url 'AMQP broker URL (amqp:// or amqps://) for --via amqp; overrides publish.url and AMQP_URL'
            cand --dead-letter 'With --via amqp: append the requests the broker could not route (NDJSON, with the reason) to FILE'
            cand -o 'With --via ndjson: write the messages to FILE (appended) instead of stdout'
            cand --output 'With --via ndjson: write the messages to FILE (appended) instead of stdout'
            cand --await 'With --via amqp|http|ndjson: after the confirms, re-check the requested keys until each has converged or DURATION has passed [default: 5m; 0 with --via ndjson]. 0 ends the run after the confirms'
            cand -f 'Summary format on stdout'
            cand --format 'Summary format on stdout'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand --apply 'Write to the read model (without it, only the plan is shown)'
            cand -y 'Do not ask for confirmation (required with --apply when stdin is not a terminal)'
            cand --yes 'Do not ask for confirmation (required with --apply when stdin is not a terminal)'
            cand --declare 'With --via amqp: declare the exchange (durable, type topic) when it does not exist, instead of stopping. Never a queue: until the projector binds one, every request comes back unroutable'
            cand -q 'Only warnings and errors on stderr: no progress bars, progress lines or notes'
            cand --quiet 'Only warnings and errors on stderr: no progress bars, progress lines or notes'
            cand -v 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
            cand --verbose 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;undo'= {
            cand -c 'Configuration file (TOML); see docs/configuration.md'
            cand --config 'Configuration file (TOML); see docs/configuration.md'
            cand --es-url 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL'
            cand --redis-url 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL'
            cand --audit 'The undo''s own audit log [default: recon-undo-YYYYMMDDTHHMMSSZ.ndjson in the current directory]'
            cand --max-rate 'Most documents written per second'
            cand -f 'Summary format on stdout'
            cand --format 'Summary format on stdout'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand --apply 'Write to the read model (without it, only what would be undone is shown)'
            cand -y 'Do not ask for confirmation (required with --apply when stdin is not a terminal)'
            cand --yes 'Do not ask for confirmation (required with --apply when stdin is not a terminal)'
            cand -v 'More on stderr: -v adds debug messages (where each setting came from), -vv trace messages too'
            cand --verbose 'More on stderr: -v adds debug messages (where each setting came from), -vv trace messages too'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;reindex'= {
            cand -c 'Configuration file (TOML); see docs/configuration.md'
            cand --config 'Configuration file (TOML); see docs/configuration.md'
            cand --pg-url 'PostgreSQL URL; overrides postgres.url and DATABASE_URL'
            cand --es-url 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL'
            cand --index 'Index or alias holding the read model; overrides elasticsearch.index'
            cand --redis-url 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL'
            cand --mapping 'Create the new index with the mappings in FILE (JSON: the `mappings` object, or a body with `mappings` and optionally `settings`) instead of copying them from the current index'
            cand --max-drift 'Swap only when at most N keys of the new index still drift after a verify pass''s repair'
            cand --verify 'How the verify gate checks the new index before the swap. `fingerprints`: against the documents the load sent (a 128-bit fingerprint each, kept in the temp dir), the rows changed since (by updated_at) and a key-only scan of the write model for deletes; every key that is not proven equal that way is compared in full, as `recon check --keys` does. `full`: a whole `recon check` of the new index per pass, which reads the projection again (a reindex of 1M orders took 1.5x as long) and also catches rows changed without an updated_at bump. A run resumed on another machine (the fingerprints stay in the temp dir of the one that loaded) verifies in full'
            cand --keep 'Older generations to keep after a successful swap (the rest are deleted)'
            cand --catch-up-margin 'Rows changed this long before a pass''s snapshot are re-projected again by the next pass (covers transactions that commit after their updated_at), e.g. 5m'
            cand --parallel 'Load N key ranges concurrently, all in one PostgreSQL snapshot'
            cand -f 'Output of --list and of the final summary on stdout'
            cand --format 'Output of --list and of the final summary on stdout'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -y 'Do not ask for confirmation (required when stdin is not a terminal)'
            cand --yes 'Do not ask for confirmation (required when stdin is not a terminal)'
            cand --rollback 'Point the alias back at the newest older generation (one atomic alias update)'
            cand --list 'List the generations of the alias: doc counts, creation times, phase, which one is live'
            cand --adopt 'elasticsearch.index names a concrete index: rebuild it into a generation and replace it by an alias of the same name (the concrete index is deleted in the same atomic call)'
            cand --resume 'Continue the unfinished reindex found at start (load from its last key, original watermark)'
            cand --discard 'Delete the unfinished reindex found at start, then start a new one'
            cand -q 'Only warnings and errors on stderr: no progress lines or notes'
            cand --quiet 'Only warnings and errors on stderr: no progress lines or notes'
            cand -v 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
            cand --verbose 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;doctor'= {
            cand -c 'Configuration file (TOML); see docs/configuration.md'
            cand --config 'Configuration file (TOML); see docs/configuration.md'
            cand --pg-url 'PostgreSQL URL; overrides postgres.url and DATABASE_URL'
            cand --es-url 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL'
            cand --index 'Index or alias holding the read model; overrides elasticsearch.index'
            cand --redis-url 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL'
            cand -f 'human: a checklist (✔/✘ on a terminal, ok/FAIL elsewhere); json: one recon.doctor/v1 document'
            cand --format 'human: a checklist (✔/✘ on a terminal, ok/FAIL elsewhere); json: one recon.doctor/v1 document'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;init'= {
            cand --table 'Derive the projection from this table (`orders`, or `schema.orders`)'
            cand --key 'The key column [default: the table''s primary key]'
            cand --pg-url 'PostgreSQL URL of the table''s database; overrides DATABASE_URL. Its password is not written'
            cand --es-url 'Elasticsearch URL whose index mapping names the fields; overrides ELASTICSEARCH_URL'
            cand --index 'The index or alias of the read model [default: the table''s name]'
            cand --redis-url 'Write a [redis] read model at this URL instead of [elasticsearch]'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;report'= {
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand merge 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'recon;report;merge'= {
            cand -f 'Report format [default: json]'
            cand --format 'Report format [default: json]'
            cand -o 'Write the merged report to FILE (atomically) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same merge, e.g. `-o json:report.json -o prometheus:recon.prom`; a plain FILE takes --format'
            cand --output 'Write the merged report to FILE (atomically) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same merge, e.g. `-o json:report.json -o prometheus:recon.prom`; a plain FILE takes --format'
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;report;help'= {
            cand merge 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'recon;report;help;merge'= {
        }
        &'recon;report;help;help'= {
        }
        &'recon;completions'= {
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;man'= {
            cand --log-format 'How messages on stderr are written: text, plain (never a timestamp) or json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'recon;help'= {
            cand check 'Compare the read model with the write model and report drift (never writes)'
            cand explain 'Show why keys drift: both sides side by side, rules and metadata (never writes)'
            cand demo 'Run a check on an embedded shop with injected drift, then clean up'
            cand repair 'Repair the drift a check finds, with conditional writes and an undo log (dry run by default)'
            cand undo 'Undo a repair from its audit log, conditionally (dry run by default)'
            cand reindex 'Rebuild the read model into a fresh index, verify it, swap the alias (zero downtime)'
            cand doctor 'Check the configuration, both sides and the [compare] rules before a run (fast: no scan)'
            cand init 'Write a commented recon.toml to start from, or one derived from a table (never overwrites)'
            cand report 'Work with check reports: combine shard reports into one'
            cand completions 'Print a shell completion script to stdout'
            cand man 'Print the man page of recon, or of one of its commands, to stdout (roff: `recon man check | man -l -`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'recon;help;check'= {
        }
        &'recon;help;explain'= {
        }
        &'recon;help;demo'= {
        }
        &'recon;help;repair'= {
        }
        &'recon;help;undo'= {
        }
        &'recon;help;reindex'= {
        }
        &'recon;help;doctor'= {
        }
        &'recon;help;init'= {
        }
        &'recon;help;report'= {
            cand merge 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had'
        }
        &'recon;help;report;merge'= {
        }
        &'recon;help;completions'= {
        }
        &'recon;help;man'= {
        }
        &'recon;help;help'= {
        }
    ]
    $completions[$command]
}
