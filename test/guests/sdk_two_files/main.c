/* A program of two files: main() here, the handler in handler.c. Both include tinyedge.h, so both
 * define the SDK's state; one copy must serve both (the handler registered there is the one the
 * loop started here calls, and the response it fills is the one the loop hands the host). */
#include <tinyedge.h>

void register_handler(void);

int main(void) {
    register_handler();
    te_wait_for_requests();
}
