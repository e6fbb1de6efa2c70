/* main.c - tandem-executor: owns plugin roots on this machine, launches their stdio MCP servers and relays them to an orchestrator. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "version.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: tandem-executor [--help] [--version]\n"
		     "owns plugin roots on this machine, launches their stdio MCP servers and relays them to an orchestrator.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 0;
		case 'V': printf("tandem-executor %s\n", TANDEM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	usage(stderr);
	return 2;
}
