// deploy: roll a tag out to the servers that run deploy-agent — MCollective's node filters,
// Chef push jobs' quorum and job states, a canary, batches, a health gate and a stop on failure.
// Replaces the original's f-checkout and f-taglist (docs/deploy.md).
//
// Exit codes: 0 every selected node succeeded; 1 the rollout ran and stopped, or some node failed
// or did not answer; 2 usage or configuration; 3 refused before running anything (quorum not
// met, no node matched, tag refused).
#include "core.hpp"
#include "shell.hpp"

#include "bus/client.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/program.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <pwd.h>
#include <unistd.h>


int main(int argc, char** argv)
{
    using namespace deploy::cli;
    CLI::App app{"deploy - roll a tag out to the servers running deploy-agent (deploykit)", "deploy"};
    app.require_subcommand(1);
    app.fallthrough();  // global options after the command too: deploy run site v1 -I web01
    app.set_version_flag("--version", "deploy " + std::string(bus::runtime::version()));
    std::string config_path = "/etc/deploy/deploy.yaml", url;
    command cmd;
    double disc = -1;
    app.add_option("-c,--config", config_path, "config file (default /etc/deploy/deploy.yaml)");
    app.add_option("-u,--url", url, "broker URL, overriding the config's rserver (stomp://host:port, failover://(...))");
    app.add_option("-I,--identity", cmd.identities, "node identity: exact, or /regex/ (repeatable: any one matches)");
    app.add_option("-F,--fact", cmd.facts,
                   "fact filter KEY=VALUE, KEY=/REGEX/, KEY<N, KEY>N, KEY<=N, KEY>=N, KEY!=V (repeatable: all must match)");
    app.add_option("-C,--class", cmd.classes, "class: exact or /regex/ (repeatable: all must match)");
    app.add_option("--nodes", cmd.nodes, "static node list A,B,... (AND the other filters)");
    app.add_option("--discovery-timeout", disc, "seconds to gather ping replies and heartbeats (default 2)");
    app.add_flag("--json", cmd.json, "print the result as JSON (progress goes to stderr)");
    app.add_flag("-v,--verbose", cmd.verbose, "log bus events to stderr");

    auto* tags = app.add_subcommand("tags", "tags present on every selected node; those missing on some are marked");
    tags->add_option("REPO", cmd.repo)->required();
    long count = 0;
    tags->add_option("-n,--count", count, "ask each node for its N newest tags");
    auto* state = app.add_subcommand("state", "the deployed release of REPO on each node");
    state->add_option("REPO", cmd.repo)->required();
    rollout_options cli_ro;  // parsed values; merged over the config's defaults below
    auto add_rollout = [&](CLI::App* s) {
        s->add_option("--canary", cli_ro.canary, "canary nodes, deployed first on their own");
        s->add_option("--batch", cli_ro.batch, "batch size N or N% (default 100%: all at once)");
        s->add_option("--batch-sleep", cli_ro.batch_sleep, "seconds between batches");
        s->add_option("--tries", cli_ro.tries, "attempts per node (default 1)");
        s->add_option("--try-sleep", cli_ro.try_sleep, "seconds between a node's attempts (default 1)");
        s->add_option("--max-failures", cli_ro.max_failures, "stop once more than N or N% of the nodes failed (default 0)");
        s->add_option("--quorum", cli_ro.quorum, "refuse to start unless N or N% of the nodes vote ready (default 100%)");
        s->add_option("--health-url", cli_ro.health_url, "after each batch: GET this URL, 2xx required");
        s->add_option("--health-cmd", cli_ro.health_cmd,
                      "after each batch: run this command (argv split on spaces, or a JSON list; no shell), exit 0 required");
        s->add_option("--health-timeout", cli_ro.health_timeout, "seconds the health check may take (default 10)");
        s->add_option("--timeout", cli_ro.timeout, "seconds each node's commit may take (default 60)");
        s->add_option("--vote-timeout", cli_ro.vote_timeout, "seconds to gather votes (default 5)");
    };
    auto* run = app.add_subcommand("run", "roll TAG of REPO out: quorum, canary, batches, health gate");
    run->add_option("REPO", cmd.repo)->required();
    run->add_option("TAG", cmd.tag)->required();
    add_rollout(run);
    auto* rollback = app.add_subcommand("rollback", "back to the previous release of REPO, as a rollout");
    rollback->add_option("REPO", cmd.repo)->required();
    add_rollout(rollback);
    auto* exec = app.add_subcommand("exec", "run a command from the agents' whitelist (push job)");
    exec->add_option("NAME", cmd.exec_name)->required();
    add_rollout(exec);
    if (auto rc = bus::runtime::parse_cli(app, argc, argv)) return *rc;

    return bus::runtime::run_guarded("deploy", [&] {
        try {
            auto cfg = load_config(config_path, app.get_option("--config")->count() > 0);
            if (!url.empty()) {
                auto o = bus::options_from_url(url);
                o.receipt_timeout = cfg.bus.client.receipt_timeout;
                cfg.bus.client = std::move(o);
            }
            cmd.discovery_timeout = disc >= 0 ? std::optional<double>(disc) : std::nullopt;
            if (tags->parsed()) cmd.name = "tags";
            else if (state->parsed()) cmd.name = "state";
            else if (run->parsed()) cmd.name = "run";
            else if (rollback->parsed()) cmd.name = "rollback";
            else cmd.name = "exec";
            if (count > 0) cmd.tags_count = count;
            // Every rollout option given on the command line wins over the config's default.
            cmd.ro = cfg.defaults;
            CLI::App* sub = run->parsed() ? run : rollback->parsed() ? rollback : exec->parsed() ? exec : nullptr;
            if (sub) {
                auto given = [&](const char* o) { return sub->get_option(o)->count() > 0; };
                if (given("--canary")) cmd.ro.canary = cli_ro.canary;
                if (given("--batch")) cmd.ro.batch = cli_ro.batch;
                if (given("--batch-sleep")) cmd.ro.batch_sleep = cli_ro.batch_sleep;
                if (given("--tries")) cmd.ro.tries = cli_ro.tries;
                if (given("--try-sleep")) cmd.ro.try_sleep = cli_ro.try_sleep;
                if (given("--max-failures")) cmd.ro.max_failures = cli_ro.max_failures;
                if (given("--quorum")) cmd.ro.quorum = cli_ro.quorum;
                if (given("--health-url")) cmd.ro.health_url = cli_ro.health_url;
                if (given("--health-cmd")) cmd.ro.health_cmd = cli_ro.health_cmd;
                if (given("--health-timeout")) cmd.ro.health_timeout = cli_ro.health_timeout;
                if (given("--timeout")) cmd.ro.timeout = cli_ro.timeout;
                if (given("--vote-timeout")) cmd.ro.vote_timeout = cli_ro.vote_timeout;
            }
            check_rollout_options(cmd.ro);
            return run_command(cfg, cmd);
        } catch (const usage_error& e) {
            std::cerr << "deploy: " << e.what() << "\n";
            return exit_usage;
        }
    });
}
