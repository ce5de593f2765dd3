/* Idle container for the runc side of the memory benchmark: sleeps until killed. */
#include <unistd.h>

int main(void) {
    for (;;) pause();
}
