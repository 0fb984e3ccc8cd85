/* gst-vim result metadata: symbol export macros.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_META_PRELUDE_H__
#define __GST_VIM_META_PRELUDE_H__

#include <gst/gst.h>

#ifndef GST_VIM_META_API
# ifdef BUILDING_GST_VIM_META
#  define GST_VIM_META_API GST_API_EXPORT
# else
#  define GST_VIM_META_API GST_API_IMPORT
# endif
#endif

#endif /* __GST_VIM_META_PRELUDE_H__ */
