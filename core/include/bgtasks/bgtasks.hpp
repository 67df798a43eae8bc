// Everything: #include <bgtasks/bgtasks.hpp>
#pragma once

#include "bgtasks/cancellation.hpp"
#include "bgtasks/clock.hpp"
#include "bgtasks/codec.hpp"
#include "bgtasks/executor.hpp"
#include "bgtasks/inbox.hpp"
#include "bgtasks/lineage.hpp"
#include "bgtasks/manager.hpp"
#include "bgtasks/metrics.hpp"
#include "bgtasks/plugin.hpp"
#include "bgtasks/result.hpp"
#include "bgtasks/runtime.hpp"
#include "bgtasks/state_store.hpp"
#include "bgtasks/tool.hpp"
#include "bgtasks/types.hpp"
