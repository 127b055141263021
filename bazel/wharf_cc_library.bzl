"""wharf_cc_library: a cc_library whose headers are included as "wharf/<package>/...".

Every library in sync/ and runtime/ is published under the include prefix of
its layer (`#include "wharf/sync/mutex.h"`, `#include "wharf/runtime/worker.h"`),
whatever the directory the repository is checked out in. This macro sets
include_prefix and strip_include_prefix from the package name, so the BUILD
files say only what differs between targets.
"""

def wharf_cc_library(name, **kwargs):
    package = native.package_name()
    native.cc_library(
        name = name,
        include_prefix = "wharf/" + package,
        strip_include_prefix = "/" + package,
        **kwargs
    )
