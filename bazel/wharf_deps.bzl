"""wharf_deps(): the repositories Wharf needs, for Wharf's own WORKSPACE and
for a consumer's.

A consumer's WORKSPACE:

    local_repository(name = "wharf", path = "...")   # or http_archive
    load("@wharf//bazel:wharf_deps.bzl", "wharf_deps")
    wharf_deps()

Each dependency is created only if the WORKSPACE has not defined it already, so
a consumer who brings their own Abseil/Boost/GoogleTest keeps theirs.
"""

load(":system_repo.bzl", "system_cc_library", "system_repo")

# Abseil is linked from its archives, not its shared objects: Debian splits
# it into ~30 .so files, and loading them (mmaps, relocations, page faults)
# was most of a process worker's start-up (//bench:ipc_bench
# BM_WorkerStart; docs/benchmarks.md). The archives depend on each other in
# ways the targets below do not spell out, so every target links all of them
# as one group (:archives); the linker takes only the members in use.
_ABSL_ARCHIVES = [
    "absl_bad_any_cast_impl",
    "absl_bad_optional_access",
    "absl_bad_variant_access",
    "absl_base",
    "absl_city",
    "absl_civil_time",
    "absl_cord",
    "absl_cord_internal",
    "absl_cordz_functions",
    "absl_cordz_handle",
    "absl_cordz_info",
    "absl_cordz_sample_token",
    "absl_debugging_internal",
    "absl_demangle_internal",
    "absl_examine_stack",
    "absl_exponential_biased",
    "absl_failure_signal_handler",
    "absl_flags_commandlineflag",
    "absl_flags_commandlineflag_internal",
    "absl_flags_config",
    "absl_flags_internal",
    "absl_flags_marshalling",
    "absl_flags_parse",
    "absl_flags_private_handle_accessor",
    "absl_flags_program_name",
    "absl_flags_reflection",
    "absl_flags_usage",
    "absl_flags_usage_internal",
    "absl_graphcycles_internal",
    "absl_hash",
    "absl_hashtablez_sampler",
    "absl_int128",
    "absl_leak_check",
    "absl_log_severity",
    "absl_low_level_hash",
    "absl_malloc_internal",
    "absl_periodic_sampler",
    "absl_random_distributions",
    "absl_random_internal_distribution_test_util",
    "absl_random_internal_platform",
    "absl_random_internal_pool_urbg",
    "absl_random_internal_randen",
    "absl_random_internal_randen_hwaes",
    "absl_random_internal_randen_hwaes_impl",
    "absl_random_internal_randen_slow",
    "absl_random_internal_seed_material",
    "absl_random_seed_gen_exception",
    "absl_random_seed_sequences",
    "absl_raw_hash_set",
    "absl_raw_logging_internal",
    "absl_scoped_set_env",
    "absl_spinlock_wait",
    "absl_stacktrace",
    "absl_status",
    "absl_statusor",
    "absl_str_format_internal",
    "absl_strerror",
    "absl_strings",
    "absl_strings_internal",
    "absl_symbolize",
    "absl_synchronization",
    "absl_throw_delegate",
    "absl_time",
    "absl_time_zone",
]

def _absl_lib(name, libs = [], deps = []):
    # `libs` documents what the target stands for; :archives links it.
    return system_cc_library(name, deps = deps + ["//:archives"])

def _absl_packages():
    lib = _absl_lib
    return {
        "": system_cc_library(
            "archives",
            extra_linkopts = ["-Wl,--start-group"] + ["-l:lib%s.a" % a for a in _ABSL_ARCHIVES] + ["-Wl,--end-group"],
        ),
        "absl/base": lib("core_headers") + lib("base", libs = ["absl_base", "absl_raw_logging_internal", "absl_spinlock_wait"]),
        "absl/status": lib(
            "status",
            libs = ["absl_status", "absl_cord", "absl_cord_internal", "absl_cordz_info", "absl_cordz_functions", "absl_cordz_handle", "absl_strerror"],
            deps = ["//absl/strings"],
        ) + lib("statusor", libs = ["absl_statusor", "absl_bad_variant_access"], deps = [":status"]),
        "absl/strings": lib(
            "strings",
            libs = ["absl_strings", "absl_strings_internal", "absl_int128", "absl_throw_delegate", "absl_raw_logging_internal"],
        ) + lib("str_format", libs = ["absl_str_format_internal"], deps = [":strings"]),
        "absl/time": lib("time", libs = ["absl_time", "absl_time_zone", "absl_civil_time", "absl_int128"], deps = ["//absl/strings"]),
        "absl/synchronization": lib(
            "synchronization",
            libs = ["absl_synchronization", "absl_graphcycles_internal", "absl_stacktrace", "absl_symbolize", "absl_malloc_internal", "absl_debugging_internal", "absl_demangle_internal"],
            deps = ["//absl/base", "//absl/time"],
        ),
        "absl/types": lib("span") + lib("optional", libs = ["absl_bad_optional_access"]) + lib("variant", libs = ["absl_bad_variant_access"]),
        "absl/cleanup": lib("cleanup"),
        "absl/functional": lib("any_invocable") + lib("function_ref"),
        "absl/container": lib(
            "flat_hash_map",
            libs = ["absl_raw_hash_set", "absl_hash", "absl_city", "absl_low_level_hash", "absl_hashtablez_sampler", "absl_exponential_biased"],
        ) + lib("inlined_vector"),
        "absl/random": lib(
            "random",
            libs = ["absl_random_internal_pool_urbg", "absl_random_internal_randen", "absl_random_internal_randen_hwaes", "absl_random_internal_randen_hwaes_impl", "absl_random_internal_randen_slow", "absl_random_internal_platform", "absl_random_internal_seed_material", "absl_random_seed_gen_exception", "absl_random_distributions"],
        ),
    }

def wharf_deps():
    """Defines Wharf's external repositories (system packages on Debian 12)."""
    existing = native.existing_rules()

    if "com_google_absl" not in existing:
        system_repo(
            name = "com_google_absl",
            probe_headers = ["absl/status/status.h"],
            debian_package = "libabsl-dev",
            packages = _absl_packages(),
        )
    if "boost" not in existing:
        system_repo(
            name = "boost",
            probe_headers = ["boost/interprocess/shared_memory_object.hpp"],
            debian_package = "libboost-dev",
            packages = {"": system_cc_library("interprocess", libs = ["rt", "pthread"])},
        )
    if "com_github_cameron314_concurrentqueue" not in existing:
        system_repo(
            name = "com_github_cameron314_concurrentqueue",
            probe_headers = ["concurrentqueue/concurrentqueue.h"],
            debian_package = "libconcurrentqueue-dev",
            packages = {"": system_cc_library("concurrentqueue")},
        )
    if "com_google_googletest" not in existing:
        system_repo(
            name = "com_google_googletest",
            probe_headers = ["gtest/gtest.h", "gmock/gmock.h"],
            debian_package = "libgtest-dev libgmock-dev",
            packages = {"": system_cc_library("gtest", libs = ["gmock", "gtest", "pthread"]) +
                            system_cc_library("gtest_main", libs = ["gtest_main"], deps = [":gtest"])},
        )
    if "com_github_google_benchmark" not in existing:
        system_repo(
            name = "com_github_google_benchmark",
            probe_headers = ["benchmark/benchmark.h"],
            debian_package = "libbenchmark-dev",
            packages = {"": system_cc_library("benchmark", libs = ["benchmark", "pthread"]) +
                            system_cc_library("benchmark_main", libs = ["benchmark_main"], deps = [":benchmark"])},
        )
    if "caf" not in existing:
        # The C++ Actor Framework 0.17 (Debian's libcaf-dev), for the peers in
        # bench/loop_bench. One target per library: @caf//:core (libcaf_core,
        # headers caf/*.hpp). libcaf_io is left out until something uses it.
        system_repo(
            name = "caf",
            probe_headers = ["caf/all.hpp"],
            debian_package = "libcaf-dev",
            packages = {"": system_cc_library("core", libs = ["caf_core", "pthread"])},
        )
    if "openssl" not in existing:
        # OpenSSL 3 (Debian's libssl-dev), under the Bazel Central Registry's
        # labels: @openssl//:crypto (libcrypto: EVP, scrypt — hash_pool) and
        # @openssl//:ssl.
        system_repo(
            name = "openssl",
            probe_headers = ["openssl/evp.h"],
            debian_package = "libssl-dev",
            packages = {"": system_cc_library("crypto", libs = ["crypto"]) +
                            system_cc_library("ssl", libs = ["ssl"], deps = [":crypto"])},
        )
    if "onetbb" not in existing:
        # oneTBB 2021 (Debian's libtbb-dev), a peer in bench/pool_bench:
        # @onetbb//:tbb, as the Bazel Central Registry names it.
        system_repo(
            name = "onetbb",
            probe_headers = ["oneapi/tbb/task_group.h"],
            debian_package = "libtbb-dev",
            packages = {"": system_cc_library("tbb", libs = ["tbb", "pthread"])},
        )
    if "com_github_jupp0r_prometheus_cpp" not in existing:
        # prometheus-cpp 1.0 (Debian's prometheus-cpp-dev), under upstream's
        # own Bazel labels: @com_github_jupp0r_prometheus_cpp//core (metrics,
        # Registry) and //pull (Exposer: serves /metrics over HTTP).
        system_repo(
            name = "com_github_jupp0r_prometheus_cpp",
            probe_headers = ["prometheus/registry.h", "prometheus/exposer.h"],
            debian_package = "prometheus-cpp-dev",
            packages = {
                "core": system_cc_library("core", libs = ["prometheus-cpp-core"]),
                "pull": system_cc_library("pull", libs = ["prometheus-cpp-pull"], deps = ["//core"]),
            },
        )
