/* main.c - tandem: a human's client for a tandem orchestrator. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "version.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: tandem [--help] [--version]\n"
		     "a human's client for a tandem orchestrator.\n");
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
		case 'V': printf("tandem %s\n", TANDEM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	usage(stderr);
	return 2;
}
