// Time-varying scalar parameters (alpha, beta, sigma), evaluated inside the loop.
// Mirrors python/lesde/schedules.py: the same four kinds and formulas.
#pragma once

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace lesde {

enum class ScheduleKind { Constant = 0, PowerLaw = 1, Exponential = 2, Tabulated = 3 };

struct Schedule {
  ScheduleKind kind = ScheduleKind::Constant;
  double a0 = 0.0;     // value (constant) or amplitude
  double tau = 1.0;    // time scale
  double gamma = 0.0;  // power-law exponent
  std::vector<double> times, values;  // tabulated: linear interpolation, held at both ends

  static Schedule constant(double value) {
    Schedule s;
    s.a0 = value;
    return s;
  }

  double operator()(double t) const {
    switch (kind) {
      case ScheduleKind::Constant:
        return a0;
      case ScheduleKind::PowerLaw:
        return a0 * std::pow(1.0 + t / tau, -gamma);
      case ScheduleKind::Exponential:
        return a0 * std::exp(-t / tau);
      case ScheduleKind::Tabulated: {
        if (t <= times.front()) return values.front();
        if (t >= times.back()) return values.back();
        const auto hi = std::upper_bound(times.begin(), times.end(), t) - times.begin();
        const auto lo = hi - 1;
        const double w = (t - times[lo]) / (times[hi] - times[lo]);
        return (1.0 - w) * values[lo] + w * values[hi];
      }
    }
    return a0;
  }

  void check(const std::string& name) const {
    if (kind == ScheduleKind::Tabulated) {
      if (times.empty() || times.size() != values.size())
        throw std::invalid_argument(name + ": tabulated schedule needs equal, non-zero lengths");
      for (size_t i = 1; i < times.size(); ++i)
        if (!(times[i] > times[i - 1]))
          throw std::invalid_argument(name + ": tabulated times must increase strictly");
    } else if ((kind == ScheduleKind::PowerLaw || kind == ScheduleKind::Exponential) && !(tau > 0)) {
      throw std::invalid_argument(name + ": tau must be > 0");
    }
  }
};

}  // namespace lesde
