# The package table: one dk_package() per Debian package. Adding a binary is a data change here
# (see README.md, "Adding a binary"); packaging/CMakeLists.txt turns each entry into CPack settings,
# install rules (config, unit, man pages, docs) and maintainer scripts.
#
#   dk_package(<package>
#     BINARIES <bin>...          # targets whose install(TARGETS ... COMPONENT <package>) fill it
#     [DAEMON] [NOSPOOL]                 # the first binary is a daemon: unit packaging/systemd/<package>.service,
#                                # state /var/lib/<package>, spool /var/spool/deploykit/<package>
#     [USER <name>|root]         # a daemon's system user (created in postinst); root = none created
#     [CONFIGS <etc-path>...]    # conffiles, sources in packaging/etc/<etc-path>
#     [SECRETS <etc-path>...]    # created empty, 0600, owned by USER in postinst; never shipped
#     [SECRET_MAPS <etc-path>...]  # the same, but created holding an empty YAML map ({}) for a daemon
#                                # that requires the file (herald's users-file)
#     [JOB_USER <name>]          # a root daemon's unprivileged user for the work it runs (stomp-ci's
#                                # jobs): created in postinst, removed at purge; owns nothing packaged
#     [DEPENDS <deb-dep>...] [RECOMMENDS ...] [SUGGESTS ...] [PROVIDES ...] [REPLACES ...] [BREAKS ...]
#     SUMMARY "<one line>" DESCRIPTION "<paragraph>")
#
# Man pages: packaging/man/<bin>.h2m for every binary (help2man's include format; section 8 for
# sbin daemons, 1 for the rest, from the binary's install directory in the table: DAEMON = first
# binary in sbin).

# Libraries the daemons load at their first use (dlopen, libbus/include/bus/lazy_library.hpp): no
# DT_NEEDED entry, so dpkg-shlibdeps cannot see them. The package that ships the soname the build
# loads, at least the version the build compiled against (its headers decide which options exist).
set(DK_DEP_LIBCURL "libcurl4 (>= ${DK_LIBCURL_VERSION})")  # libcurl.so.4, the OpenSSL flavour
string(REGEX REPLACE "^libgit2\\.so\\." "libgit2-" _git_pkg "${DK_LIBGIT2_SONAME}")  # libgit2.so.1.5 -> libgit2-1.5
set(DK_DEP_LIBGIT2 "${_git_pkg} (>= ${DK_LIBGIT2_VERSION})")
# libssl and libcrypto: every binary with BINARIES below speaks TLS when its configuration says so
# (a stomp+ssl:// broker, a TLS listener) and loads them only then (libbus/src/openssl/
# libssl_lazy.cpp); dk_package adds this to each such package's Depends.
string(REGEX REPLACE "^libssl\\.so\\.([0-9]+)$" "libssl\\1" _ssl_pkg "${BUS_LIBSSL_SONAME}")  # libssl.so.3 -> libssl3
string(REGEX MATCH "^[0-9]+\\.[0-9]+\\.[0-9]+" _ssl_version "${BUS_OPENSSL_VERSION}")
set(DK_DEP_LIBSSL "${_ssl_pkg} (>= ${_ssl_version})")

dk_package(stomp-git BINARIES stomp-git DAEMON USER root
  CONFIGS stomp-git/stomp-git.yaml
  SECRETS stomp-git/bus.passcode stomp-git/git.credentials
  DEPENDS "${DK_DEP_LIBGIT2}"
  RECOMMENDS openssh-client
  SUMMARY "deploykit: fetch git repositories when commits are announced on the bus"
  DESCRIPTION "stomp-git listens for commit events on a STOMP bus and fetches (and, per mode, checks out) the configured repositories as each repository's owner. It runs as root only to drop to those owners.")

dk_package(stomp-jenkins BINARIES stomp-jenkins DAEMON USER stomp-jenkins
  CONFIGS stomp-jenkins/stomp-jenkins.yaml
  SECRETS stomp-jenkins/bus.passcode stomp-jenkins/jenkins.credentials
  DEPENDS "${DK_DEP_LIBCURL}"
  SUMMARY "deploykit: trigger Jenkins jobs for commits announced on the bus"
  DESCRIPTION "stomp-jenkins listens for commit events on a STOMP bus and triggers the Jenkins jobs configured for each repository, with crumbs, API tokens and retries, and reports the queued builds.")

dk_package(jenkins-helper BINARIES jenkins-helper
  CONFIGS jenkins-helper/jenkins-helper.yaml
  SUMMARY "deploykit: report Jenkins builds on the bus"
  DESCRIPTION "jenkins-helper is run from a Jenkins job (begin, success, failure) and publishes the build's outcome on the STOMP bus in the original deploykit's format.")

dk_package(github-webhook BINARIES github-webhook DAEMON USER github-webhook
  CONFIGS github-webhook/github-webhook.yaml
  SECRETS github-webhook/bus.passcode github-webhook/github.secret
  PROVIDES github-stomp REPLACES github-stomp BREAKS github-stomp
  SUMMARY "deploykit: forge webhooks to commit events on the bus"
  DESCRIPTION "github-webhook receives push webhooks from GitHub, GitLab, Gitea, Forgejo and Bitbucket, checks their secrets and publishes commit events on the STOMP bus. It replaces the original deploykit's github-stomp.")

dk_package(stomp-broker BINARIES stomp-broker DAEMON NOSPOOL USER stomp-broker
  CONFIGS stomp-broker/stomp-broker.yaml
  SECRETS stomp-broker/users.yaml
  SUMMARY "deploykit: embedded STOMP 1.0/1.1/1.2 broker"
  DESCRIPTION "stomp-broker is a single-machine STOMP broker with topics, queues, wildcard and durable subscriptions, a journal, users and TLS, following RabbitMQ's and ActiveMQ's conventions.")

dk_package(stompctl BINARIES stompctl
  SUMMARY "deploykit: publish to and subscribe from STOMP destinations"
  DESCRIPTION "stompctl sends and receives STOMP messages, signed or legacy deploykit events, and drains hook outboxes.")

dk_package(deploykit-hooks BINARIES stomp-post-receive svn-stomp
  CONFIGS stomp-postrec/stomp-postrec.yaml svn-stomp/svn-stomp.yaml
  SUGGESTS git subversion
  SUMMARY "deploykit: git and Subversion hooks that announce commits on the bus"
  DESCRIPTION "stomp-post-receive (git post-receive and post-commit) and svn-stomp (Subversion post-commit) publish commit events on the STOMP bus, spooling them when no broker is reachable.")

# libapt-pkg's version order for stomp-repo and repo-poller, out of their processes
# (daemons/common/version_helper.hpp): the helper in a package of its own that both depend on, so
# neither daemon's package drags in the other and no file is shipped twice. No man page: a private
# helper in /usr/lib/deploykit, not a command. Its libapt-pkg dependency comes from dpkg-shlibdeps.
dk_package(deploykit-vercmp
  SUMMARY "deploykit: libapt-pkg's Debian version order for stomp-repo and repo-poller"
  DESCRIPTION "stomp-repo-vercmp ranks Debian versions in libapt-pkg's order (epochs, tildes, revisions) for the deploykit daemons that compare package versions, so that those daemons do not load libapt-pkg themselves.")
set(DK_DEP_VERCMP "deploykit-vercmp (>= ${PROJECT_VERSION})")

dk_package(stomp-repo BINARIES stomp-repo DAEMON USER root
  DEPENDS "${DK_DEP_VERCMP}"
  CONFIGS stomp-repo/stomp-repo.yaml
  SECRETS stomp-repo/bus.passcode
  SUMMARY "deploykit: refresh apt lists when a watched package is published"
  DESCRIPTION "stomp-repo listens for package events on the STOMP bus and runs a scoped apt-get update when a watched package gets a new version. It runs as root because apt-get update does.")

dk_package(repo-poller BINARIES repo-poller DAEMON USER repo-poller
  DEPENDS "${DK_DEP_VERCMP}" "${DK_DEP_LIBCURL}"
  CONFIGS repo-poller/repo-poller.yaml
  SECRETS repo-poller/bus.passcode
  RECOMMENDS gpgv
  SUMMARY "deploykit: announce new package versions of Debian repositories"
  DESCRIPTION "repo-poller polls the InRelease files of Debian repositories and publishes package events for new versions, for repositories without a reprepro hook.")

dk_package(reprepro-stomp BINARIES reprepro-stomp
  CONFIGS reprepro-stomp/reprepro-stomp.yaml
  SUGGESTS reprepro
  SUMMARY "deploykit: reprepro notifier that announces packages on the bus"
  DESCRIPTION "reprepro-stomp is a reprepro Log: notifier: it publishes a package event once the new version is exported.")

dk_package(herald BINARIES herald DAEMON USER herald
  CONFIGS herald/herald.yaml
  SECRETS herald/bus.passcode
  SECRET_MAPS herald/users.yaml
  DEPENDS "${DK_DEP_LIBCURL}" "libpcre2-8-0 (>= ${HERALD_LIBPCRE2_VERSION})"
  SUMMARY "deploykit: record and search the bus's events"
  DESCRIPTION "herald subscribes to the deploykit topics, records every event in an SQLite database and serves a search page, a JSON API and live updates, with logins and an ingest API for other systems.")

dk_package(deploy-agent BINARIES deploy-agent DAEMON USER root
  CONFIGS deploy-agent/deploy-agent.yaml
  SECRETS deploy-agent/bus.passcode
  DEPENDS "${DK_DEP_LIBGIT2}"
  SUMMARY "deploykit: deploy tags of a site's clone on this server"
  DESCRIPTION "deploy-agent answers the deploy CLI over the STOMP bus: it lists tags, reports the deployed release, deploys a tag with hooks and an atomic symlink switch, rolls back and runs whitelisted commands. It runs as root only to drop to each repository's owner.")

dk_package(deploy BINARIES deploy
  CONFIGS deploy/deploy.yaml
  SUMMARY "deploykit: roll a tag out to the servers running deploy-agent"
  DESCRIPTION "deploy lists tags and deployed releases and rolls a tag out to the servers running deploy-agent: votes, quorum, canary, batches and a health gate, rollback, and whitelisted commands.")

dk_package(stomp-ci BINARIES stomp-ci DAEMON USER root JOB_USER ci-runner
  CONFIGS stomp-ci/stomp-ci.yaml
  SECRETS stomp-ci/bus.passcode
  DEPENDS "${DK_DEP_LIBGIT2}"
  RECOMMENDS openssh-client
  SUMMARY "deploykit: run CI jobs for commits announced on the bus"
  DESCRIPTION "stomp-ci turns commit events into CI jobs on a queue and runs their steps in a fresh checkout as an unprivileged user, with deadlines and limits, and reports the builds as Jenkins does. It runs as root only to drop to that user.")
