
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'recon' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'recon'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'recon' {
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Compare the read model with the write model and report drift (never writes)')
            [CompletionResult]::new('explain', 'explain', [CompletionResultType]::ParameterValue, 'Show why keys drift: both sides side by side, rules and metadata (never writes)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run a check on an embedded shop with injected drift, then clean up')
            [CompletionResult]::new('repair', 'repair', [CompletionResultType]::ParameterValue, 'Repair the drift a check finds, with conditional writes and an undo log (dry run by default)')
            [CompletionResult]::new('undo', 'undo', [CompletionResultType]::ParameterValue, 'Undo a repair from its audit log, conditionally (dry run by default)')
            [CompletionResult]::new('reindex', 'reindex', [CompletionResultType]::ParameterValue, 'Rebuild the read model into a fresh index, verify it, swap the alias (zero downtime)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check the configuration, both sides and the [compare] rules before a run (fast: no scan)')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write a commented recon.toml to start from, or one derived from a table (never overwrites)')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Work with check reports: combine shard reports into one')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page of recon, or of one of its commands, to stdout (roff: `recon man check | man -l -`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'recon;check' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--pg-url', '--pg-url', [CompletionResultType]::ParameterName, 'PostgreSQL URL; overrides postgres.url and DATABASE_URL')
            [CompletionResult]::new('--es-url', '--es-url', [CompletionResultType]::ParameterName, 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL')
            [CompletionResult]::new('--index', '--index', [CompletionResultType]::ParameterName, 'Index or alias holding the read model; overrides elasticsearch.index')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Report drift on rows changed within DURATION before the snapshot as `pending` instead of failing (needs postgres.updated_at), e.g. 30s, 5m')
            [CompletionResult]::new('--allow', '--allow', [CompletionResultType]::ParameterName, 'Exit 0 as long as at most N keys drift')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'List at most N drifted keys in the report (counts stay complete)')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Report format [default: table on a terminal, json otherwise]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Report format [default: table on a terminal, json otherwise]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the report to FILE (atomically: a complete report or none) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same run (one snapshot, the same counts), e.g. `-o junit:report.xml -o markdown:summary.md -o prometheus:recon.prom`; a plain FILE takes --format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write the report to FILE (atomically: a complete report or none) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same run (one snapshot, the same counts), e.g. `-o junit:report.xml -o markdown:summary.md -o prometheus:recon.prom`; a plain FILE takes --format')
            [CompletionResult]::new('--keys', '--keys', [CompletionResultType]::ParameterName, 'Check only these keys (comma-separated), orphans among them included')
            [CompletionResult]::new('--keys-file', '--keys-file', [CompletionResultType]::ParameterName, 'Check only the keys listed in FILE, one per line (`-` for stdin; `#` starts a comment line)')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Check only rows changed since DURATION ago (e.g. 1h) or since TIMESTAMP (RFC 3339), and their documents (needs postgres.updated_at). Cannot see orphans left by deletes: run a full check too')
            [CompletionResult]::new('--recheck', '--recheck', [CompletionResultType]::ParameterName, 'After the scan, wait DURATION, then read every drifted key again from both sides and drop the keys that now agree (reported as converged), e.g. 30s')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'Split the key space into N ranges of about equal rows and scan them concurrently, all in one PostgreSQL snapshot and one Elasticsearch point in time')
            [CompletionResult]::new('--shard', '--shard', [CompletionResultType]::ParameterName, 'Check only the K-th of N contiguous key ranges (e.g. 2/8); combine the shards'' JSON reports with `recon report merge`')
            [CompletionResult]::new('--sample', '--sample', [CompletionResultType]::ParameterName, 'Check a seeded random set of contiguous key ranges covering about FRACTION of the rows (0 < FRACTION <= 1), and estimate the total drift')
            [CompletionResult]::new('--sample-seed', '--sample-seed', [CompletionResultType]::ParameterName, 'Seed for --sample [default: from the clock; the report states it]')
            [CompletionResult]::new('--checkpoint', '--checkpoint', [CompletionResultType]::ParameterName, 'Record the last key fully compared (and the counts and drift up to it) in FILE as the scan goes, per range with --parallel, so that `--resume` can continue after a crash or an interrupt. A finished run removes FILE')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only warnings and errors on stderr: no progress bars, progress lines or notes')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only warnings and errors on stderr: no progress bars, progress lines or notes')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'Continue the run recorded in --checkpoint FILE after its last compared key (every range after its own), in a new snapshot (the report says how many snapshots it spans); starts from the beginning when FILE is absent')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;explain' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--pg-url', '--pg-url', [CompletionResultType]::ParameterName, 'PostgreSQL URL; overrides postgres.url and DATABASE_URL')
            [CompletionResult]::new('--es-url', '--es-url', [CompletionResultType]::ParameterName, 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL')
            [CompletionResult]::new('--index', '--index', [CompletionResultType]::ParameterName, 'Index or alias holding the read model; overrides elasticsearch.index')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL')
            [CompletionResult]::new('--keys-file', '--keys-file', [CompletionResultType]::ParameterName, 'Explain the keys listed in FILE too, one per line (`-` for stdin; `#` starts a comment line)')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Output: columns for a person, or one `recon.explain/v1` JSON object per key and line')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output: columns for a person, or one `recon.explain/v1` JSON object per key and line')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from, which sides are read), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from, which sides are read), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;demo' {
            [CompletionResult]::new('--orders', '--orders', [CompletionResultType]::ParameterName, 'Number of orders in the demo shop')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Report format [default: table on a terminal, json otherwise]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Report format [default: table on a terminal, json otherwise]')
            [CompletionResult]::new('--read-model', '--read-model', [CompletionResultType]::ParameterName, 'The read model the shop is projected into: the in-process Elasticsearch-API emulator, or a throwaway redis-server (which must be installed)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only warnings and errors on stderr: no progress output')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only warnings and errors on stderr: no progress output')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;repair' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--pg-url', '--pg-url', [CompletionResultType]::ParameterName, 'PostgreSQL URL; overrides postgres.url and DATABASE_URL')
            [CompletionResult]::new('--es-url', '--es-url', [CompletionResultType]::ParameterName, 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL')
            [CompletionResult]::new('--index', '--index', [CompletionResultType]::ParameterName, 'Index or alias holding the read model; overrides elasticsearch.index')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Leave rows changed within DURATION alone (the projector may not have caught up), e.g. 5m')
            [CompletionResult]::new('--from-report', '--from-report', [CompletionResultType]::ParameterName, 'Repair the keys listed in a `recon check` JSON or NDJSON report (each re-verified first)')
            [CompletionResult]::new('--keys', '--keys', [CompletionResultType]::ParameterName, 'Repair these keys (comma-separated), re-verified first')
            [CompletionResult]::new('--keys-file', '--keys-file', [CompletionResultType]::ParameterName, 'Repair the keys in FILE, one per line (`-` for stdin; `#` starts a comment line), as `recon check --keys-file` reads them')
            [CompletionResult]::new('--from-plan', '--from-plan', [CompletionResultType]::ParameterName, 'Apply a plan written earlier with --plan; anything written since it was made conflicts')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'Finish an interrupted repair from its audit log, without repeating applied actions')
            [CompletionResult]::new('--plan', '--plan', [CompletionResultType]::ParameterName, 'Write the whole plan to FILE (NDJSON); apply it later with --from-plan')
            [CompletionResult]::new('--mode', '--mode', [CompletionResultType]::ParameterName, 'replace: write the whole projected document, keeping compare.ignore fields; patch: update only the differing top-level fields')
            [CompletionResult]::new('--max-changes', '--max-changes', [CompletionResultType]::ParameterName, 'Refuse to apply a plan of more than N writes')
            [CompletionResult]::new('--max-deletes', '--max-deletes', [CompletionResultType]::ParameterName, 'Refuse to apply a plan of more than N deletes')
            [CompletionResult]::new('--audit', '--audit', [CompletionResultType]::ParameterName, 'The write-ahead audit log [default: recon-repair-YYYYMMDDTHHMMSSZ.ndjson in the current directory]')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'Most documents per bulk request')
            [CompletionResult]::new('--batch-bytes', '--batch-bytes', [CompletionResultType]::ParameterName, 'Most bytes per bulk request, e.g. 5MB, 512KB')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Bulk requests in flight at once')
            [CompletionResult]::new('--max-rate', '--max-rate', [CompletionResultType]::ParameterName, 'Most documents written (or re-projection requests published) per second')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'How the repair reaches the read model. write: conditional writes by recon itself. amqp, http, ndjson: re-projection requests to the projector ([publish] in the configuration; docs/reproject-contract.md), which then writes the read model itself')
            [CompletionResult]::new('--amqp-url', '--amqp-url', [CompletionResultType]::ParameterName, 'AMQP broker URL (amqp:// or amqps://) for --via amqp; overrides publish.url and AMQP_URL')
            [CompletionResult]::new('--dead-letter', '--dead-letter', [CompletionResultType]::ParameterName, 'With --via amqp: append the requests the broker could not route (NDJSON, with the reason) to FILE')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'With --via ndjson: write the messages to FILE (appended) instead of stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'With --via ndjson: write the messages to FILE (appended) instead of stdout')
            [CompletionResult]::new('--await', '--await', [CompletionResultType]::ParameterName, 'With --via amqp|http|ndjson: after the confirms, re-check the requested keys until each has converged or DURATION has passed [default: 5m; 0 with --via ndjson]. 0 ends the run after the confirms')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Summary format on stdout')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Summary format on stdout')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('--apply', '--apply', [CompletionResultType]::ParameterName, 'Write to the read model (without it, only the plan is shown)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (required with --apply when stdin is not a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (required with --apply when stdin is not a terminal)')
            [CompletionResult]::new('--declare', '--declare', [CompletionResultType]::ParameterName, 'With --via amqp: declare the exchange (durable, type topic) when it does not exist, instead of stopping. Never a queue: until the projector binds one, every request comes back unroutable')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only warnings and errors on stderr: no progress bars, progress lines or notes')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only warnings and errors on stderr: no progress bars, progress lines or notes')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;undo' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--es-url', '--es-url', [CompletionResultType]::ParameterName, 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL')
            [CompletionResult]::new('--audit', '--audit', [CompletionResultType]::ParameterName, 'The undo''s own audit log [default: recon-undo-YYYYMMDDTHHMMSSZ.ndjson in the current directory]')
            [CompletionResult]::new('--max-rate', '--max-rate', [CompletionResultType]::ParameterName, 'Most documents written per second')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Summary format on stdout')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Summary format on stdout')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('--apply', '--apply', [CompletionResultType]::ParameterName, 'Write to the read model (without it, only what would be undone is shown)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (required with --apply when stdin is not a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (required with --apply when stdin is not a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from), -vv trace messages too')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from), -vv trace messages too')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;reindex' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--pg-url', '--pg-url', [CompletionResultType]::ParameterName, 'PostgreSQL URL; overrides postgres.url and DATABASE_URL')
            [CompletionResult]::new('--es-url', '--es-url', [CompletionResultType]::ParameterName, 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL')
            [CompletionResult]::new('--index', '--index', [CompletionResultType]::ParameterName, 'Index or alias holding the read model; overrides elasticsearch.index')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL')
            [CompletionResult]::new('--mapping', '--mapping', [CompletionResultType]::ParameterName, 'Create the new index with the mappings in FILE (JSON: the `mappings` object, or a body with `mappings` and optionally `settings`) instead of copying them from the current index')
            [CompletionResult]::new('--max-drift', '--max-drift', [CompletionResultType]::ParameterName, 'Swap only when at most N keys of the new index still drift after a verify pass''s repair')
            [CompletionResult]::new('--verify', '--verify', [CompletionResultType]::ParameterName, 'How the verify gate checks the new index before the swap. `fingerprints`: against the documents the load sent (a 128-bit fingerprint each, kept in the temp dir), the rows changed since (by updated_at) and a key-only scan of the write model for deletes; every key that is not proven equal that way is compared in full, as `recon check --keys` does. `full`: a whole `recon check` of the new index per pass, which reads the projection again (a reindex of 1M orders took 1.5x as long) and also catches rows changed without an updated_at bump. A run resumed on another machine (the fingerprints stay in the temp dir of the one that loaded) verifies in full')
            [CompletionResult]::new('--keep', '--keep', [CompletionResultType]::ParameterName, 'Older generations to keep after a successful swap (the rest are deleted)')
            [CompletionResult]::new('--catch-up-margin', '--catch-up-margin', [CompletionResultType]::ParameterName, 'Rows changed this long before a pass''s snapshot are re-projected again by the next pass (covers transactions that commit after their updated_at), e.g. 5m')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'Load N key ranges concurrently, all in one PostgreSQL snapshot')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Output of --list and of the final summary on stdout')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output of --list and of the final summary on stdout')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (required when stdin is not a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (required when stdin is not a terminal)')
            [CompletionResult]::new('--rollback', '--rollback', [CompletionResultType]::ParameterName, 'Point the alias back at the newest older generation (one atomic alias update)')
            [CompletionResult]::new('--list', '--list', [CompletionResultType]::ParameterName, 'List the generations of the alias: doc counts, creation times, phase, which one is live')
            [CompletionResult]::new('--adopt', '--adopt', [CompletionResultType]::ParameterName, 'elasticsearch.index names a concrete index: rebuild it into a generation and replace it by an alias of the same name (the concrete index is deleted in the same atomic call)')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'Continue the unfinished reindex found at start (load from its last key, original watermark)')
            [CompletionResult]::new('--discard', '--discard', [CompletionResultType]::ParameterName, 'Delete the unfinished reindex found at start, then start a new one')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only warnings and errors on stderr: no progress lines or notes')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only warnings and errors on stderr: no progress lines or notes')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;doctor' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file (TOML); see docs/configuration.md')
            [CompletionResult]::new('--pg-url', '--pg-url', [CompletionResultType]::ParameterName, 'PostgreSQL URL; overrides postgres.url and DATABASE_URL')
            [CompletionResult]::new('--es-url', '--es-url', [CompletionResultType]::ParameterName, 'Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL')
            [CompletionResult]::new('--index', '--index', [CompletionResultType]::ParameterName, 'Index or alias holding the read model; overrides elasticsearch.index')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'human: a checklist (✔/✘ on a terminal, ok/FAIL elsewhere); json: one recon.doctor/v1 document')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'human: a checklist (✔/✘ on a terminal, ok/FAIL elsewhere); json: one recon.doctor/v1 document')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;init' {
            [CompletionResult]::new('--table', '--table', [CompletionResultType]::ParameterName, 'Derive the projection from this table (`orders`, or `schema.orders`)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The key column [default: the table''s primary key]')
            [CompletionResult]::new('--pg-url', '--pg-url', [CompletionResultType]::ParameterName, 'PostgreSQL URL of the table''s database; overrides DATABASE_URL. Its password is not written')
            [CompletionResult]::new('--es-url', '--es-url', [CompletionResultType]::ParameterName, 'Elasticsearch URL whose index mapping names the fields; overrides ELASTICSEARCH_URL')
            [CompletionResult]::new('--index', '--index', [CompletionResultType]::ParameterName, 'The index or alias of the read model [default: the table''s name]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'Write a [redis] read model at this URL instead of [elasticsearch]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;report' {
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'recon;report;merge' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Report format [default: json]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Report format [default: json]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the merged report to FILE (atomically) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same merge, e.g. `-o json:report.json -o prometheus:recon.prom`; a plain FILE takes --format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write the merged report to FILE (atomically) instead of stdout. Repeatable as FORMAT:FILE for several reports of the same merge, e.g. `-o json:report.json -o prometheus:recon.prom`; a plain FILE takes --format')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;report;help' {
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'recon;report;help;merge' {
            break
        }
        'recon;report;help;help' {
            break
        }
        'recon;completions' {
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;man' {
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How messages on stderr are written: text, plain (never a timestamp) or json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'recon;help' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Compare the read model with the write model and report drift (never writes)')
            [CompletionResult]::new('explain', 'explain', [CompletionResultType]::ParameterValue, 'Show why keys drift: both sides side by side, rules and metadata (never writes)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run a check on an embedded shop with injected drift, then clean up')
            [CompletionResult]::new('repair', 'repair', [CompletionResultType]::ParameterValue, 'Repair the drift a check finds, with conditional writes and an undo log (dry run by default)')
            [CompletionResult]::new('undo', 'undo', [CompletionResultType]::ParameterValue, 'Undo a repair from its audit log, conditionally (dry run by default)')
            [CompletionResult]::new('reindex', 'reindex', [CompletionResultType]::ParameterValue, 'Rebuild the read model into a fresh index, verify it, swap the alias (zero downtime)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check the configuration, both sides and the [compare] rules before a run (fast: no scan)')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write a commented recon.toml to start from, or one derived from a table (never overwrites)')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Work with check reports: combine shard reports into one')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page of recon, or of one of its commands, to stdout (roff: `recon man check | man -l -`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'recon;help;check' {
            break
        }
        'recon;help;explain' {
            break
        }
        'recon;help;demo' {
            break
        }
        'recon;help;repair' {
            break
        }
        'recon;help;undo' {
            break
        }
        'recon;help;reindex' {
            break
        }
        'recon;help;doctor' {
            break
        }
        'recon;help;init' {
            break
        }
        'recon;help;report' {
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key space, with the exit code a full run would have had')
            break
        }
        'recon;help;report;merge' {
            break
        }
        'recon;help;completions' {
            break
        }
        'recon;help;man' {
            break
        }
        'recon;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
