/* main.c — the `dtm` binary: everything is in the engine library (src/cli). */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return dtm_cli_main(argc, argv);
}
