// herald without an alert module (daemons/herald/alerts/ not present): an `alerts:` section is
// refused with a clear error rather than silently ignored.
#include "alert_seam.hpp"

#include "bus/runtime/config_reader.hpp"

namespace herald::alerts {

struct settings {};

std::shared_ptr<const settings> read_settings(const bus::runtime::section& s)
{
    s.fail("", "this herald was built without the alert module (daemons/herald/alerts)");
}

std::unique_ptr<engine> make_engine(std::shared_ptr<const settings>, context) { return nullptr; }

} // namespace herald::alerts
