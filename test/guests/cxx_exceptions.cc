// C++ on static glibc: a global constructor and destructor run, iostream prints, an exception
// thrown two frames down is caught by type, and the standard containers and algorithms work.
#include <algorithm>
#include <iostream>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Global {
  int value = 0;
  Global() : value(42) { std::cout << "global constructor ran" << std::endl; }
  ~Global() { std::cout << "global destructor ran" << std::endl; }
};
Global global;

[[noreturn]] void fail(const std::string &why) { throw std::runtime_error("failed: " + why); }

int parse_positive(int n) {
  if (n <= 0) fail("not positive: " + std::to_string(n));
  return n;
}

}  // namespace

int main() {
  if (global.value != 42) {
    std::cerr << "cxx_exceptions: the global constructor did not run" << std::endl;
    return 1;
  }
  try {
    parse_positive(-7);
    std::cerr << "cxx_exceptions: no exception was thrown" << std::endl;
    return 1;
  } catch (const std::logic_error &) {
    std::cerr << "cxx_exceptions: caught by the wrong type" << std::endl;
    return 1;
  } catch (const std::runtime_error &e) {
    std::cout << "caught std::runtime_error: " << e.what() << std::endl;
  }

  std::vector<int> v(100);
  std::iota(v.begin(), v.end(), 1);
  std::reverse(v.begin(), v.end());
  std::sort(v.begin(), v.end());
  auto total = std::make_unique<long>(std::accumulate(v.begin(), v.end(), 0L));
  if (*total != 5050 || v.front() != 1 || v.back() != 100) {
    std::cerr << "cxx_exceptions: containers gave the wrong result" << std::endl;
    return 1;
  }
  std::cout << "sum of 1..100 after reverse and sort: " << *total << std::endl;
  return 0;
}
