# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_recon_global_optspecs
    string join \n log-format= h/help V/version
end

function __fish_recon_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_recon_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_recon_using_subcommand
    set -l cmd (__fish_recon_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c recon -n "__fish_recon_needs_command" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_needs_command" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_needs_command" -f -a "check" -d 'Compare the read model with the write model and report drift (never writes)'
complete -c recon -n "__fish_recon_needs_command" -f -a "explain" -d 'Show why keys drift: both sides side by side, rules and metadata (never writes)'
complete -c recon -n "__fish_recon_needs_command" -f -a "demo" -d 'Run a check on an embedded shop with injected drift, then clean up'
complete -c recon -n "__fish_recon_needs_command" -f -a "repair" -d 'Repair the drift a check finds, with conditional writes and an undo log (dry run by default)'
complete -c recon -n "__fish_recon_needs_command" -f -a "undo" -d 'Undo a repair from its audit log, conditionally (dry run by default)'
complete -c recon -n "__fish_recon_needs_command" -f -a "reindex" -d 'Rebuild the read model into a fresh index, verify it, swap the alias (zero downtime)'
complete -c recon -n "__fish_recon_needs_command" -f -a "doctor" -d 'Check the configuration, both sides and the [compare] rules before a run (fast: no scan)'
complete -c recon -n "__fish_recon_needs_command" -f -a "init" -d 'Write a commented recon.toml to start from, or one derived from a table (never overwrites)'
complete -c recon -n "__fish_recon_needs_command" -f -a "report" -d 'Work with check reports: combine shard reports into one'
complete -c recon -n "__fish_recon_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c recon -n "__fish_recon_needs_command" -f -a "man" -d 'Print the man page of recon, or of one of its commands, to stdout (roff: `recon man check | man -l -`)'
complete -c recon -n "__fish_recon_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c recon -n "__fish_recon_using_subcommand check" -s c -l config -d 'Configuration file (TOML); see docs/configuration.md' -r -F
complete -c recon -n "__fish_recon_using_subcommand check" -l pg-url -d 'PostgreSQL URL; overrides postgres.url and DATABASE_URL' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l es-url -d 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l index -d 'Index or alias holding the read model; overrides elasticsearch.index' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l redis-url -d 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l grace -d 'Report drift on rows changed within DURATION before the snapshot as `pending` instead of failing (needs postgres.updated_at), e.g. 30s, 5m' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l allow -d 'Exit 0 as long as at most N keys drift' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l limit -d 'List at most N drifted keys in the report (counts stay complete)' -r
complete -c recon -n "__fish_recon_using_subcommand check" -s f -l format -d 'Report format [default: table on a terminal, json otherwise]' -r -f -a "table\t'Summary, per-field counts and a sample of drifted keys, for a terminal'
json\t'One `recon.check/v2` JSON document'
ndjson\t'One JSON object per line: each drifted key as it is found, then the summary'
junit\t'JUnit XML, one test case per drifted key, for CI dashboards'
markdown\t'GitHub-flavoured markdown, for pull-request comments and CI job summaries'
prometheus\t'Prometheus text exposition format, for node_exporter\'s textfile collector'"
complete -c recon -n "__fish_recon_using_subcommand check" -s o -l output -d 'Write the report to FILE (atomically: a complete report or none) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same run (one snapshot, the same counts), e.g. `-o junit:report.xml -o markdown:summary.md -o prometheus:recon.prom`; a plain FILE takes --format' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l keys -d 'Check only these keys (comma-separated), orphans among them included' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l keys-file -d 'Check only the keys listed in FILE, one per line (`-` for stdin; `#` starts a comment line)' -r -F
complete -c recon -n "__fish_recon_using_subcommand check" -l since -d 'Check only rows changed since DURATION ago (e.g. 1h) or since TIMESTAMP (RFC 3339), and their documents (needs postgres.updated_at). Cannot see orphans left by deletes: run a full check too' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l recheck -d 'After the scan, wait DURATION, then read every drifted key again from both sides and drop the keys that now agree (reported as converged), e.g. 30s' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l parallel -d 'Split the key space into N ranges of about equal rows and scan them concurrently, all in one PostgreSQL snapshot and one Elasticsearch point in time' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l shard -d 'Check only the K-th of N contiguous key ranges (e.g. 2/8); combine the shards\' JSON reports with `recon report merge`' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l sample -d 'Check a seeded random set of contiguous key ranges covering about FRACTION of the rows (0 < FRACTION <= 1), and estimate the total drift' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l sample-seed -d 'Seed for --sample [default: from the clock; the report states it]' -r
complete -c recon -n "__fish_recon_using_subcommand check" -l checkpoint -d 'Record the last key fully compared (and the counts and drift up to it) in FILE as the scan goes, per range with --parallel, so that `--resume` can continue after a crash or an interrupt. A finished run removes FILE' -r -F
complete -c recon -n "__fish_recon_using_subcommand check" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand check" -s q -l quiet -d 'Only warnings and errors on stderr: no progress bars, progress lines or notes'
complete -c recon -n "__fish_recon_using_subcommand check" -s v -l verbose -d 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
complete -c recon -n "__fish_recon_using_subcommand check" -l resume -d 'Continue the run recorded in --checkpoint FILE after its last compared key (every range after its own), in a new snapshot (the report says how many snapshots it spans); starts from the beginning when FILE is absent'
complete -c recon -n "__fish_recon_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand check" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand explain" -s c -l config -d 'Configuration file (TOML); see docs/configuration.md' -r -F
complete -c recon -n "__fish_recon_using_subcommand explain" -l pg-url -d 'PostgreSQL URL; overrides postgres.url and DATABASE_URL' -r
complete -c recon -n "__fish_recon_using_subcommand explain" -l es-url -d 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL' -r
complete -c recon -n "__fish_recon_using_subcommand explain" -l index -d 'Index or alias holding the read model; overrides elasticsearch.index' -r
complete -c recon -n "__fish_recon_using_subcommand explain" -l redis-url -d 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL' -r
complete -c recon -n "__fish_recon_using_subcommand explain" -l keys-file -d 'Explain the keys listed in FILE too, one per line (`-` for stdin; `#` starts a comment line)' -r -F
complete -c recon -n "__fish_recon_using_subcommand explain" -s f -l format -d 'Output: columns for a person, or one `recon.explain/v1` JSON object per key and line' -r -f -a "human\t'The documents side by side in columns, for a terminal'
json\t'One `recon.explain/v1` JSON object per key and line (NDJSON)'"
complete -c recon -n "__fish_recon_using_subcommand explain" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand explain" -s v -l verbose -d 'More on stderr: -v adds debug messages (where each setting came from, which sides are read), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
complete -c recon -n "__fish_recon_using_subcommand explain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand explain" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand demo" -l orders -d 'Number of orders in the demo shop' -r
complete -c recon -n "__fish_recon_using_subcommand demo" -s f -l format -d 'Report format [default: table on a terminal, json otherwise]' -r -f -a "table\t'Summary, per-field counts and a sample of drifted keys, for a terminal'
json\t'One `recon.check/v2` JSON document'
ndjson\t'One JSON object per line: each drifted key as it is found, then the summary'
junit\t'JUnit XML, one test case per drifted key, for CI dashboards'
markdown\t'GitHub-flavoured markdown, for pull-request comments and CI job summaries'
prometheus\t'Prometheus text exposition format, for node_exporter\'s textfile collector'"
complete -c recon -n "__fish_recon_using_subcommand demo" -l read-model -d 'The read model the shop is projected into: the in-process Elasticsearch-API emulator, or a throwaway redis-server (which must be installed)' -r -f -a "elasticsearch\t''
redis\t''"
complete -c recon -n "__fish_recon_using_subcommand demo" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand demo" -s q -l quiet -d 'Only warnings and errors on stderr: no progress output'
complete -c recon -n "__fish_recon_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand demo" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand repair" -s c -l config -d 'Configuration file (TOML); see docs/configuration.md' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -l pg-url -d 'PostgreSQL URL; overrides postgres.url and DATABASE_URL' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l es-url -d 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l index -d 'Index or alias holding the read model; overrides elasticsearch.index' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l redis-url -d 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l grace -d 'Leave rows changed within DURATION alone (the projector may not have caught up), e.g. 5m' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l from-report -d 'Repair the keys listed in a `recon check` JSON or NDJSON report (each re-verified first)' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -l keys -d 'Repair these keys (comma-separated), re-verified first' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l keys-file -d 'Repair the keys in FILE, one per line (`-` for stdin; `#` starts a comment line), as `recon check --keys-file` reads them' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -l from-plan -d 'Apply a plan written earlier with --plan; anything written since it was made conflicts' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -l resume -d 'Finish an interrupted repair from its audit log, without repeating applied actions' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -l plan -d 'Write the whole plan to FILE (NDJSON); apply it later with --from-plan' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -l mode -d 'replace: write the whole projected document, keeping compare.ignore fields; patch: update only the differing top-level fields' -r -f -a "replace\t'The whole projected document, keeping the `compare.ignore` fields of the current one'
patch\t'Only the differing top-level fields (`update` with a partial `doc`)'"
complete -c recon -n "__fish_recon_using_subcommand repair" -l max-changes -d 'Refuse to apply a plan of more than N writes' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l max-deletes -d 'Refuse to apply a plan of more than N deletes' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l audit -d 'The write-ahead audit log [default: recon-repair-YYYYMMDDTHHMMSSZ.ndjson in the current directory]' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -l batch-size -d 'Most documents per bulk request' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l batch-bytes -d 'Most bytes per bulk request, e.g. 5MB, 512KB' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l concurrency -d 'Bulk requests in flight at once' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l max-rate -d 'Most documents written (or re-projection requests published) per second' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l via -d 'How the repair reaches the read model. write: conditional writes by recon itself. amqp, http, ndjson: re-projection requests to the projector ([publish] in the configuration; docs/reproject-contract.md), which then writes the read model itself' -r -f -a "write\t'Conditional writes to the read model, by recon (the default)'
amqp\t'Publish re-projection requests to a RabbitMQ exchange, with publisher confirms'
http\t'POST re-projection requests in batches to publish.http_url'
ndjson\t'Write re-projection requests as NDJSON to stdout (or --output), for any other broker\'s producer'"
complete -c recon -n "__fish_recon_using_subcommand repair" -l amqp-url -d 'AMQP broker URL (amqp:// or amqps://) for --via amqp; overrides publish.url and AMQP_URL' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -l dead-letter -d 'With --via amqp: append the requests the broker could not route (NDJSON, with the reason) to FILE' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -s o -l output -d 'With --via ndjson: write the messages to FILE (appended) instead of stdout' -r -F
complete -c recon -n "__fish_recon_using_subcommand repair" -l await -d 'With --via amqp|http|ndjson: after the confirms, re-check the requested keys until each has converged or DURATION has passed [default: 5m; 0 with --via ndjson]. 0 ends the run after the confirms' -r
complete -c recon -n "__fish_recon_using_subcommand repair" -s f -l format -d 'Summary format on stdout' -r -f -a "text\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand repair" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand repair" -l apply -d 'Write to the read model (without it, only the plan is shown)'
complete -c recon -n "__fish_recon_using_subcommand repair" -s y -l yes -d 'Do not ask for confirmation (required with --apply when stdin is not a terminal)'
complete -c recon -n "__fish_recon_using_subcommand repair" -l declare -d 'With --via amqp: declare the exchange (durable, type topic) when it does not exist, instead of stopping. Never a queue: until the projector binds one, every request comes back unroutable'
complete -c recon -n "__fish_recon_using_subcommand repair" -s q -l quiet -d 'Only warnings and errors on stderr: no progress bars, progress lines or notes'
complete -c recon -n "__fish_recon_using_subcommand repair" -s v -l verbose -d 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
complete -c recon -n "__fish_recon_using_subcommand repair" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand repair" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand undo" -s c -l config -d 'Configuration file (TOML); see docs/configuration.md' -r -F
complete -c recon -n "__fish_recon_using_subcommand undo" -l es-url -d 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL' -r
complete -c recon -n "__fish_recon_using_subcommand undo" -l redis-url -d 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL' -r
complete -c recon -n "__fish_recon_using_subcommand undo" -l audit -d 'The undo\'s own audit log [default: recon-undo-YYYYMMDDTHHMMSSZ.ndjson in the current directory]' -r -F
complete -c recon -n "__fish_recon_using_subcommand undo" -l max-rate -d 'Most documents written per second' -r
complete -c recon -n "__fish_recon_using_subcommand undo" -s f -l format -d 'Summary format on stdout' -r -f -a "text\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand undo" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand undo" -l apply -d 'Write to the read model (without it, only what would be undone is shown)'
complete -c recon -n "__fish_recon_using_subcommand undo" -s y -l yes -d 'Do not ask for confirmation (required with --apply when stdin is not a terminal)'
complete -c recon -n "__fish_recon_using_subcommand undo" -s v -l verbose -d 'More on stderr: -v adds debug messages (where each setting came from), -vv trace messages too'
complete -c recon -n "__fish_recon_using_subcommand undo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand undo" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand reindex" -s c -l config -d 'Configuration file (TOML); see docs/configuration.md' -r -F
complete -c recon -n "__fish_recon_using_subcommand reindex" -l pg-url -d 'PostgreSQL URL; overrides postgres.url and DATABASE_URL' -r
complete -c recon -n "__fish_recon_using_subcommand reindex" -l es-url -d 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL' -r
complete -c recon -n "__fish_recon_using_subcommand reindex" -l index -d 'Index or alias holding the read model; overrides elasticsearch.index' -r
complete -c recon -n "__fish_recon_using_subcommand reindex" -l redis-url -d 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL' -r
complete -c recon -n "__fish_recon_using_subcommand reindex" -l mapping -d 'Create the new index with the mappings in FILE (JSON: the `mappings` object, or a body with `mappings` and optionally `settings`) instead of copying them from the current index' -r -F
complete -c recon -n "__fish_recon_using_subcommand reindex" -l max-drift -d 'Swap only when at most N keys of the new index still drift after a verify pass\'s repair' -r
complete -c recon -n "__fish_recon_using_subcommand reindex" -l verify -d 'How the verify gate checks the new index before the swap. `fingerprints`: against the documents the load sent (a 128-bit fingerprint each, kept in the temp dir), the rows changed since (by updated_at) and a key-only scan of the write model for deletes; every key that is not proven equal that way is compared in full, as `recon check --keys` does. `full`: a whole `recon check` of the new index per pass, which reads the projection again (a reindex of 1M orders took 1.5x as long) and also catches rows changed without an updated_at bump. A run resumed on another machine (the fingerprints stay in the temp dir of the one that loaded) verifies in full' -r -f -a "fingerprints\t'The load\'s fingerprints, the changed rows and a key scan; the rest compared in full'
full\t'A whole check of the new generation per pass'"
complete -c recon -n "__fish_recon_using_subcommand reindex" -l keep -d 'Older generations to keep after a successful swap (the rest are deleted)' -r
complete -c recon -n "__fish_recon_using_subcommand reindex" -l catch-up-margin -d 'Rows changed this long before a pass\'s snapshot are re-projected again by the next pass (covers transactions that commit after their updated_at), e.g. 5m' -r
complete -c recon -n "__fish_recon_using_subcommand reindex" -l parallel -d 'Load N key ranges concurrently, all in one PostgreSQL snapshot' -r
complete -c recon -n "__fish_recon_using_subcommand reindex" -s f -l format -d 'Output of --list and of the final summary on stdout' -r -f -a "text\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand reindex" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand reindex" -s y -l yes -d 'Do not ask for confirmation (required when stdin is not a terminal)'
complete -c recon -n "__fish_recon_using_subcommand reindex" -l rollback -d 'Point the alias back at the newest older generation (one atomic alias update)'
complete -c recon -n "__fish_recon_using_subcommand reindex" -l list -d 'List the generations of the alias: doc counts, creation times, phase, which one is live'
complete -c recon -n "__fish_recon_using_subcommand reindex" -l adopt -d 'elasticsearch.index names a concrete index: rebuild it into a generation and replace it by an alias of the same name (the concrete index is deleted in the same atomic call)'
complete -c recon -n "__fish_recon_using_subcommand reindex" -l resume -d 'Continue the unfinished reindex found at start (load from its last key, original watermark)'
complete -c recon -n "__fish_recon_using_subcommand reindex" -l discard -d 'Delete the unfinished reindex found at start, then start a new one'
complete -c recon -n "__fish_recon_using_subcommand reindex" -s q -l quiet -d 'Only warnings and errors on stderr: no progress lines or notes'
complete -c recon -n "__fish_recon_using_subcommand reindex" -s v -l verbose -d 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug'
complete -c recon -n "__fish_recon_using_subcommand reindex" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand reindex" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand doctor" -s c -l config -d 'Configuration file (TOML); see docs/configuration.md' -r -F
complete -c recon -n "__fish_recon_using_subcommand doctor" -l pg-url -d 'PostgreSQL URL; overrides postgres.url and DATABASE_URL' -r
complete -c recon -n "__fish_recon_using_subcommand doctor" -l es-url -d 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL' -r
complete -c recon -n "__fish_recon_using_subcommand doctor" -l index -d 'Index or alias holding the read model; overrides elasticsearch.index' -r
complete -c recon -n "__fish_recon_using_subcommand doctor" -l redis-url -d 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL' -r
complete -c recon -n "__fish_recon_using_subcommand doctor" -s f -l format -d 'human: a checklist (✔/✘ on a terminal, ok/FAIL elsewhere); json: one recon.doctor/v1 document' -r -f -a "human\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand doctor" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand init" -l table -d 'Derive the projection from this table (`orders`, or `schema.orders`)' -r
complete -c recon -n "__fish_recon_using_subcommand init" -l key -d 'The key column [default: the table\'s primary key]' -r
complete -c recon -n "__fish_recon_using_subcommand init" -l pg-url -d 'PostgreSQL URL of the table\'s database; overrides DATABASE_URL. Its password is not written' -r
complete -c recon -n "__fish_recon_using_subcommand init" -l es-url -d 'Elasticsearch URL whose index mapping names the fields; overrides ELASTICSEARCH_URL' -r
complete -c recon -n "__fish_recon_using_subcommand init" -l index -d 'The index or alias of the read model [default: the table\'s name]' -r
complete -c recon -n "__fish_recon_using_subcommand init" -l redis-url -d 'Write a [redis] read model at this URL instead of [elasticsearch]' -r
complete -c recon -n "__fish_recon_using_subcommand init" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand init" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand report; and not __fish_seen_subcommand_from merge help" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand report; and not __fish_seen_subcommand_from merge help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand report; and not __fish_seen_subcommand_from merge help" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand report; and not __fish_seen_subcommand_from merge help" -f -a "merge" -d 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had'
complete -c recon -n "__fish_recon_using_subcommand report; and not __fish_seen_subcommand_from merge help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c recon -n "__fish_recon_using_subcommand report; and __fish_seen_subcommand_from merge" -s f -l format -d 'Report format [default: json]' -r -f -a "table\t'Summary, per-field counts and a sample of drifted keys, for a terminal'
json\t'One `recon.check/v2` JSON document'
ndjson\t'One JSON object per line: each drifted key as it is found, then the summary'
junit\t'JUnit XML, one test case per drifted key, for CI dashboards'
markdown\t'GitHub-flavoured markdown, for pull-request comments and CI job summaries'
prometheus\t'Prometheus text exposition format, for node_exporter\'s textfile collector'"
complete -c recon -n "__fish_recon_using_subcommand report; and __fish_seen_subcommand_from merge" -s o -l output -d 'Write the merged report to FILE (atomically) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same merge, e.g. `-o json:report.json -o prometheus:recon.prom`; a plain FILE takes --format' -r
complete -c recon -n "__fish_recon_using_subcommand report; and __fish_seen_subcommand_from merge" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand report; and __fish_seen_subcommand_from merge" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand report; and __fish_seen_subcommand_from merge" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand report; and __fish_seen_subcommand_from help" -f -a "merge" -d 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had'
complete -c recon -n "__fish_recon_using_subcommand report; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c recon -n "__fish_recon_using_subcommand completions" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand completions" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand man" -l log-format -d 'How messages on stderr are written: text, plain (never a timestamp) or json' -r -f -a "text\t''
plain\t''
json\t''"
complete -c recon -n "__fish_recon_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c recon -n "__fish_recon_using_subcommand man" -s V -l version -d 'Print version'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "check" -d 'Compare the read model with the write model and report drift (never writes)'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "explain" -d 'Show why keys drift: both sides side by side, rules and metadata (never writes)'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "demo" -d 'Run a check on an embedded shop with injected drift, then clean up'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "repair" -d 'Repair the drift a check finds, with conditional writes and an undo log (dry run by default)'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "undo" -d 'Undo a repair from its audit log, conditionally (dry run by default)'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "reindex" -d 'Rebuild the read model into a fresh index, verify it, swap the alias (zero downtime)'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "doctor" -d 'Check the configuration, both sides and the [compare] rules before a run (fast: no scan)'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "init" -d 'Write a commented recon.toml to start from, or one derived from a table (never overwrites)'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "report" -d 'Work with check reports: combine shard reports into one'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "man" -d 'Print the man page of recon, or of one of its commands, to stdout (roff: `recon man check | man -l -`)'
complete -c recon -n "__fish_recon_using_subcommand help; and not __fish_seen_subcommand_from check explain demo repair undo reindex doctor init report completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c recon -n "__fish_recon_using_subcommand help; and __fish_seen_subcommand_from report" -f -a "merge" -d 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had'
